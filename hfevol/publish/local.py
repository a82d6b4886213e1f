"""The local target: a git repository folder laid out like a Hub dataset repo.

The working tree holds the latest release (README card, data, configuration file, plots),
so ``load_dataset(<folder>)`` loads it; every version is an annotated tag. A release commit is
built from git objects (:mod:`.git`) and the working tree is brought to it only once it is
tagged, so a publish killed at any point leaves the folder showing the previous release, and
the same command run again finishes the release. ``load_dataset`` ignores ``revision`` for a
local folder: an older version is loaded from a checkout of its own
(:meth:`LocalTarget.load_hint`), and :func:`export_version` copies a tagged tree out
unchanged (for ``publish_from``).
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import tarfile
from pathlib import Path

from ..errors import ConfigError, PublishError
from . import git as plumbing
from .git import git
from .target import KEEP, Head, Release, RemoteFile, Target, load_lines
from .versions import version_key


def is_release_folder(folder: Path) -> bool:
    return (folder / ".git").exists()


def version_folder(folder: Path, version: str) -> Path:
    """Where the load hint checks out ``version`` of release folder ``folder``: ``<folder>-<version>`` beside it."""
    return folder.with_name(f"{folder.name}-{version}")


def checkout_command(folder: str, version: str, dest: str) -> str:
    """The shell line that checks out ``version`` of a release folder into ``dest`` (a new folder)."""
    return shlex.join(["git", "-C", folder, "worktree", "add", "--detach", dest, version])


class LocalTarget(Target):
    """Releases in the git folder ``folder`` (created if absent), on branch ``main``."""

    kind = "local"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser().resolve()
        self.location = str(self.folder)

    def prepare(self) -> None:
        """Create the repository if needed; refuse a folder that holds something else or has edits.

        A checkout left behind by a publish killed before it updated the working tree (or an
        older release checked out by hand) is not an edit: it is brought to the latest release.
        """
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigError(f"local release folder {self.folder} is a file")
        if not is_release_folder(self.folder):
            if self.folder.exists() and any(self.folder.iterdir()):
                raise ConfigError(f"{self.folder} is not empty and is not a release folder (no .git)", hint="choose another --local-dir.")
            self.folder.mkdir(parents=True, exist_ok=True)
            git(self.folder, "init", "-q", "-b", "main")
        status = git(self.folder, "status", "--porcelain", "--untracked-files=all").splitlines()
        edits = [line for line in status if line[1:2] != " "]  # changed in the working tree, or untracked
        hint = f"keep them aside with `git -C {shlex.quote(str(self.folder))} stash --include-untracked` (or discard them), so that a release holds only published content."
        if edits:
            raise PublishError(f"the release folder {self.folder} has uncommitted changes:\n" + "\n".join(edits), hint=hint)
        head = plumbing.branch_commit(self.folder)
        if head is None:
            if status:  # staged by hand before the first release
                raise PublishError(f"the release folder {self.folder} has staged changes that are not a release:\n" + "\n".join(status), hint=hint)
            return
        symbolic = git(self.folder, "symbolic-ref", "-q", "HEAD", check=False).strip()
        index_tree = git(self.folder, "write-tree").strip()
        if symbolic == plumbing.BRANCH and index_tree == plumbing.tree_of(self.folder, head):
            return
        if index_tree != plumbing.EMPTY_TREE and index_tree not in plumbing.history_trees(self.folder):
            raise PublishError(f"the release folder {self.folder} has staged changes that are not a release:\n" + "\n".join(status), hint=hint)
        if any(r.commit == head for r in self.releases()):  # the latest release, never shown: show it now
            plumbing.check_out_branch(self.folder)

    def releases(self) -> list[Release]:
        if not is_release_folder(self.folder):
            return []
        fmt = "%(refname:short)%09%(*objectname)%09%(objectname)%09%(creatordate:iso-strict)%09%(contents:subject)"
        out = []
        for line in git(self.folder, "for-each-ref", "refs/tags", f"--format={fmt}").splitlines():
            name, peeled, oid, date, title = (line.split("\t") + [""] * 5)[:5]
            out.append(Release(name, peeled or oid, date or None, title or None))
        return sorted(out, key=lambda r: version_key(r.version))

    def _files(self, revision: str) -> dict[str, RemoteFile]:
        files = {}
        for line in git(self.folder, "ls-tree", "-r", "-z", revision).split("\0"):
            if line:
                meta, path = line.split("\t", 1)
                files[path] = RemoteFile(meta.split()[2])
        return files

    def head(self) -> Head | None:
        commit = plumbing.branch_commit(self.folder)
        return Head(commit, self._files(commit)) if commit else None

    def files_at(self, commit: str) -> Head:
        return Head(commit, self._files(commit))

    def commit(self, files: dict[str, Path], delete: list[str], message: str, *, create_pr: bool) -> tuple[str, str | None]:
        if create_pr:
            raise ConfigError("create_pr applies to the Hub only", hint="give a repo id to open a pull request.")
        parent = plumbing.branch_commit(self.folder)
        commit = plumbing.build_commit(self.folder, files, delete, message, parent)
        if commit is None:
            assert parent is not None  # a tree equal to the parent's has a parent
            return parent, None
        plumbing.move_branch(self.folder, commit, parent, message)
        return commit, None

    def tag(self, version: str, commit: str, message: str, *, replace: bool) -> None:
        git(self.folder, "tag", "-a", *(["-f"] if replace else []), "-m", message, version, commit)
        plumbing.pause("tag")

    def show(self, commit: str) -> None:
        """Bring the working tree to the branch, now that its release is tagged."""
        plumbing.check_out_branch(self.folder)

    def load_hint(self, version: str, configs: list[str]) -> tuple[str | None, tuple[str, ...]]:
        """``version`` checked out in a folder of its own (``load_dataset`` ignores ``revision``
        for a local folder, and the release folder itself shows the latest release), then loaded."""
        dest = version_folder(self.folder, version)
        return checkout_command(str(self.folder), version, str(dest)), load_lines(json.dumps(str(dest)), configs)


def export_version(folder: str | Path, version: str, dest: Path) -> dict[str, Path]:
    """Copy the tree of tag ``version`` of release folder ``folder`` into ``dest``, unchanged.

    Raises:
        ConfigError: ``folder`` is not a release folder.
        PublishError: ``version`` is not a tag there.
    """
    root = Path(folder).expanduser().resolve()
    if not is_release_folder(root):
        raise ConfigError(f"{root} is not a local release folder (no .git)", hint="give a folder written by `hfevol publish` without --repo.")
    tags = [r.version for r in LocalTarget(root).releases()]
    if version not in tags:
        raise PublishError(f"{root} has no release {version!r}", hint=f"its releases: {', '.join(tags) or 'none'}.")
    raw = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", f"refs/tags/{version}"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        tar.extractall(dest, filter="data")
    return {p.relative_to(dest).as_posix(): p for p in sorted(dest.rglob("*")) if p.is_file() and p.name not in KEEP}
