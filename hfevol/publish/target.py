"""What a release target (the Hub, a local git folder) provides, and the types they share."""

from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

KEEP = (".gitattributes", ".gitignore")
"""Files of a target branch that a release never deletes and that may sit beside a release's
files in its commit: the ``.gitattributes`` that the Hub creates with every repo (and a
``.gitignore`` added by hand). Every other file of a release commit is one the release sent."""
DERIVED = ("README.md", "plots/")
"""Files made from the payload (the card, the plots): not part of the content comparison."""


def git_blob_id(data: bytes) -> str:
    """Git's object id for a file's bytes (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's content, read in blocks (data files can be large)."""
    return _stream(hashlib.sha256(), path)


def file_blob_id(path: Path) -> str:
    """:func:`git_blob_id` of a file, read in blocks."""
    return _stream(hashlib.sha1(b"blob %d\0" % path.stat().st_size), path)


def _stream(digest: "hashlib._Hash", path: Path) -> str:
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Release:
    """One version of a dataset: a tag and the commit it points at."""

    version: str
    commit: str
    date: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class RemoteFile:
    """A file of a target branch as the target reports it."""

    oid: str
    """Git blob id."""
    sha256: str | None = None
    """Content sha256, for LFS files."""

    def matches(self, local: Path) -> bool:
        if self.sha256 is not None:
            return self.sha256 == file_sha256(local)
        return self.oid == file_blob_id(local)


@dataclass
class Head:
    """The tip of the target branch: its commit and files."""

    commit: str
    files: dict[str, RemoteFile] = field(default_factory=dict)

    def same_payload(self, files: dict[str, Path]) -> bool:
        """Whether the branch already holds exactly these content files (card and plots aside)."""
        mine = {p: f for p, f in files.items() if not is_derived(p)}
        theirs = {p: f for p, f in self.files.items() if not is_derived(p) and p not in KEEP}
        return mine.keys() == theirs.keys() and all(theirs[p].matches(local) for p, local in mine.items())

    def stale(self, files: dict[str, Path]) -> list[str]:
        """Files on the branch that the new release does not hold."""
        return sorted(p for p in self.files if p not in files and p not in KEEP)

    def check_commit(self, files: dict[str, Path]) -> list[str]:
        """What makes this commit's WHOLE tree differ from ``files``: the files it lacks or holds
        with other content, and the files it holds that were not sent (:data:`KEEP` files aside)."""
        wrong = [p for p, local in files.items() if p not in self.files or not self.files[p].matches(local)]
        extra = [f"{p} (not sent)" for p in self.files if p not in files and p not in KEEP]
        return sorted(wrong + extra)


def load_lines(location: str, configs: list[str], extra: str = "") -> tuple[str, ...]:
    """``load_dataset(<location>, <config><extra>)`` for each config (no config name when there is only ``default``)."""
    names = [None] if configs == ["default"] else configs
    return tuple(f"load_dataset({location}{'' if c is None else ', ' + json.dumps(c)}{extra})" for c in names)


def is_derived(path: str) -> bool:
    return any(path == d or (d.endswith("/") and path.startswith(d)) for d in DERIVED)


class Target(abc.ABC):
    """Where releases go. Every method raises :class:`hfevol.errors.PublishError` on failure."""

    kind: str
    location: str
    private: bool | None = None
    """Whether the Hub repo is private, once :meth:`prepare` has run (None for local folders)."""

    @abc.abstractmethod
    def prepare(self) -> None:
        """Create what is missing (the repo, the folder) and check that releases can be made."""

    @abc.abstractmethod
    def releases(self) -> list[Release]:
        """The versions already released, oldest first."""

    @abc.abstractmethod
    def head(self) -> Head | None:
        """The tip of the branch releases go to; None when it does not exist yet."""

    @abc.abstractmethod
    def files_at(self, commit: str) -> Head:
        """The files of ``commit``, to check a commit before it is tagged."""

    @abc.abstractmethod
    def commit(self, files: dict[str, Path], delete: list[str], message: str, *, create_pr: bool) -> tuple[str, str | None]:
        """Write ``files`` and remove ``delete`` in one commit; return its id and a PR URL if one was opened."""

    @abc.abstractmethod
    def tag(self, version: str, commit: str, message: str, *, replace: bool) -> None:
        """Point tag ``version`` at ``commit`` (``replace``: move an existing tag)."""

    def show(self, commit: str) -> None:  # noqa: B027 - an optional hook; doing nothing is right for the Hub
        """Once ``commit`` is tagged, make a local working copy show it (nothing to do on the Hub)."""

    @abc.abstractmethod
    def load_hint(self, version: str, configs: list[str]) -> tuple[str | None, tuple[str, ...]]:
        """How to load ``version``: a shell command to run first (or None), then one Python
        ``load_dataset(...)`` expression per config in ``configs``."""
