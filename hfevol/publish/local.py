"""The local target: a git repository folder laid out like a Hub dataset repo.

The working tree holds the latest release (README card, data, configuration file, plots),
so ``load_dataset(<folder>)`` loads it; every version is an annotated tag. ``git
checkout v1`` brings back an older one, and :func:`export_version` copies a tagged tree
out unchanged (for ``publish_from``).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from ..errors import ConfigError, MissingDependencyError, PublishError
from .target import KEEP, Head, Release, RemoteFile, Target
from .versions import version_key

_IDENTITY = {"GIT_AUTHOR_NAME": "hfevol", "GIT_AUTHOR_EMAIL": "hfevol@localhost", "GIT_COMMITTER_NAME": "hfevol", "GIT_COMMITTER_EMAIL": "hfevol@localhost"}


def git(folder: Path, *args: str, check: bool = True) -> str:
    """Run git in ``folder``; return its stdout. Raises PublishError with git's own message."""
    if shutil.which("git") is None:
        raise MissingDependencyError("git", "the local release target", "install git (e.g. apt-get install git)")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    for key, value in _IDENTITY.items():  # only where the user has not set an identity
        env.setdefault(key, value)
    result = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, env=env)
    if check and result.returncode != 0:
        message = (result.stderr or result.stdout).decode(errors="replace").strip().splitlines()
        raise PublishError(f"git {args[0]} failed in {folder}: {message[-1] if message else 'exit ' + str(result.returncode)}")
    return result.stdout.decode(errors="replace")


def is_release_folder(folder: Path) -> bool:
    return (folder / ".git").exists()


class LocalTarget(Target):
    """Releases in the git folder ``folder`` (created if absent), on branch ``main``."""

    kind = "local"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser().resolve()
        self.location = str(self.folder)

    def prepare(self) -> None:
        """Create the repository if needed; refuse a folder that holds something else or has edits."""
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigError(f"local release folder {self.folder} is a file")
        if not is_release_folder(self.folder):
            if self.folder.exists() and any(self.folder.iterdir()):
                raise ConfigError(f"{self.folder} is not empty and is not a release folder (no .git)", hint="choose another --local-dir.")
            self.folder.mkdir(parents=True, exist_ok=True)
            git(self.folder, "init", "-q", "-b", "main")
        dirty = git(self.folder, "status", "--porcelain").strip()
        if dirty:
            raise PublishError(
                f"the release folder {self.folder} has uncommitted changes:\n{dirty}",
                hint="commit or discard them (git -C FOLDER stash) so that a release holds only published content.",
            )

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
        commit = git(self.folder, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False).strip()
        return Head(commit, self._files(commit)) if commit else None

    def files_at(self, commit: str) -> Head:
        return Head(commit, self._files(commit))

    def commit(self, files: dict[str, Path], delete: list[str], message: str, *, create_pr: bool) -> tuple[str, str | None]:
        if create_pr:
            raise ConfigError("create_pr applies to the Hub only", hint="give a repo id to open a pull request.")
        for path in delete:
            gone = self.folder / path
            gone.unlink(missing_ok=True)
            for parent in gone.parents:  # folders left empty go too, as git would not keep them
                if parent == self.folder or any(parent.iterdir()):
                    break
                parent.rmdir()
        for path, local in files.items():
            target = self.folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, target)
        git(self.folder, "add", "-A")
        if git(self.folder, "status", "--porcelain").strip():
            git(self.folder, "commit", "-q", "-m", message)
        return git(self.folder, "rev-parse", "HEAD").strip(), None

    def tag(self, version: str, commit: str, message: str, *, replace: bool) -> None:
        git(self.folder, "tag", "-a", *(["-f"] if replace else []), "-m", message, version, commit)

    def load_hint(self, version: str) -> str:
        return f'load_dataset("{self.folder}")  # the checked-out release; git -C {self.folder} checkout {version} for this one'


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

