"""Git for local release folders: one runner, and the plumbing that builds a release commit
without touching the working tree.

A release commit is made from objects only: each file is stored with ``git hash-object -w``,
its tree is built in a temporary index (``GIT_INDEX_FILE``, never the folder's own index) with
``read-tree`` and ``update-index --index-info``, written with ``write-tree`` and committed with
``commit-tree``; ``update-ref`` then moves ``main`` only if it still points where it did
(compare-and-swap). Until then the folder's branch, index and files are as they were, so a
process killed at any of these steps leaves the previous release in place, plus a few
unreferenced objects that git collects by itself.

**Test hook.** ``HFEVOL_TEST_PAUSE_AT=<step>`` makes the publish that reaches ``<step>``
print ``hfevol-test-paused <step>`` on stderr and sleep (``HFEVOL_TEST_PAUSE_S`` seconds,
default 600), so that a test can kill it there. The steps, in order: ``locked`` (the release
folder's lock is held), ``objects`` (files stored), ``commit`` (commit object made, branch not
moved), ``ref`` (branch moved, not tagged), ``tag`` (tagged, working tree not yet updated).
It is meant for tests only and does nothing when the variable is unset.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..errors import MissingDependencyError, PublishError

_IDENTITY = {"GIT_AUTHOR_NAME": "hfevol", "GIT_AUTHOR_EMAIL": "hfevol@localhost", "GIT_COMMITTER_NAME": "hfevol", "GIT_COMMITTER_EMAIL": "hfevol@localhost"}
ZERO = "0" * 40
"""The null object id: as ``update-ref``'s old value it means "the ref must not exist yet"."""
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
"""The id of git's empty tree (what an absent index holds)."""
BRANCH = "refs/heads/main"
PAUSE_STEPS = ("locked", "objects", "commit", "ref", "tag")


def git(folder: Path, *args: str, check: bool = True, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    """Run git in ``folder``; return its stdout. Raises PublishError with git's own message."""
    if shutil.which("git") is None:
        raise MissingDependencyError("git", "the local release target", "install git (e.g. apt-get install git)")
    full = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    for key, value in _IDENTITY.items():  # only where the user has not set an identity
        full.setdefault(key, value)
    full.update(env or {})
    result = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, env=full, input=None if stdin is None else stdin.encode())
    if check and result.returncode != 0:
        message = (result.stderr or result.stdout).decode(errors="replace").strip().splitlines()
        raise PublishError(f"git {args[0]} failed in {folder}: {message[-1] if message else 'exit ' + str(result.returncode)}")
    return result.stdout.decode(errors="replace")


def pause(step: str) -> None:
    """The test hook (see the module docstring): stop at ``step`` when HFEVOL_TEST_PAUSE_AT names it."""
    if os.environ.get("HFEVOL_TEST_PAUSE_AT") != step:
        return
    print(f"hfevol-test-paused {step}", file=sys.stderr, flush=True)
    time.sleep(float(os.environ.get("HFEVOL_TEST_PAUSE_S", "600")))


def branch_commit(folder: Path) -> str | None:
    """The commit ``main`` points at; None before the first release."""
    return git(folder, "rev-parse", "--verify", "-q", f"{BRANCH}^{{commit}}", check=False).strip() or None


def tree_of(folder: Path, commit: str) -> str:
    return git(folder, "rev-parse", f"{commit}^{{tree}}").strip()


def history_trees(folder: Path) -> set[str]:
    """The trees of every commit on ``main`` (empty before the first release)."""
    if branch_commit(folder) is None:
        return set()
    return set(git(folder, "log", "--format=%T", BRANCH).split())


def build_commit(folder: Path, files: dict[str, Path], delete: list[str], message: str, parent: str | None) -> str | None:
    """Store ``files`` and make a commit of ``parent``'s tree with ``files`` written and ``delete``
    removed, touching neither the branch, the index nor the working tree.

    Returns the new commit's id, or None when the tree equals ``parent``'s (nothing to commit).
    """
    paths = sorted(files)
    blobs = git(folder, "hash-object", "-w", "--no-filters", "--stdin-paths", stdin="".join(f"{files[p].resolve()}\n" for p in paths)).split()
    if len(blobs) != len(paths):
        raise PublishError(f"git hash-object stored {len(blobs)} of {len(paths)} files in {folder}")
    pause("objects")
    index = Path(git(folder, "rev-parse", "--absolute-git-dir").strip()) / "hfevol-release.index"
    env = {"GIT_INDEX_FILE": str(index)}
    index.unlink(missing_ok=True)  # one left by a killed run (the folder's lock is held)
    try:
        git(folder, "read-tree", *([parent] if parent else ["--empty"]), env=env)
        entries = [f"0 {ZERO}\t{p}" for p in delete] + [f"100644 {blob}\t{p}" for p, blob in zip(paths, blobs, strict=True)]
        git(folder, "update-index", "-z", "--index-info", env=env, stdin="".join(e + "\0" for e in entries))
        tree = git(folder, "write-tree", env=env).strip()
    finally:
        index.unlink(missing_ok=True)
    if parent is not None and tree == tree_of(folder, parent):
        return None
    commit = git(folder, "commit-tree", tree, *(["-p", parent] if parent else []), "-m", message).strip()
    pause("commit")
    return commit


def move_branch(folder: Path, commit: str, expected: str | None, message: str) -> None:
    """Point ``main`` at ``commit`` only if it still points at ``expected`` (None: does not exist)."""
    git(folder, "update-ref", "-m", message, BRANCH, commit, expected or ZERO)
    pause("ref")


def check_out_branch(folder: Path) -> None:
    """Make the folder's HEAD, index and working tree show ``main``, whatever they showed before
    (tracked files that ``main`` lacks are removed; untracked files are left alone)."""
    git(folder, "symbolic-ref", "HEAD", BRANCH)
    git(folder, "reset", "-q", "--hard", BRANCH)
