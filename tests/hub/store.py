"""The test Hub's storage: repositories as content-addressed commits, kept on disk.

A repository is a set of commits, each holding a full file table (path -> blob), plus
refs: branches, tags and pull-request refs (``refs/pr/N``). Blob ids follow git: a regular
file's id is the git blob sha1 of its bytes; an LFS file's id is the git blob sha1 of its
pointer file, and its content is stored under its sha256. Everything a test may want to
inspect (blobs, LFS objects, the repository table) is written under ``root``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
INITIAL_GITATTRIBUTES = (
    b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"
)
_REF_NAME = re.compile(r"^(?!.*\.\.)(?!.*//)(?!/)(?!.*/$)(?!.*\.lock$)[A-Za-z0-9._/+-]{1,200}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


class StoreError(Exception):
    """A request the Hub would refuse: ``status`` and ``code`` become the HTTP answer."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def git_blob_id(data: bytes) -> str:
    """Git's object id for a file's bytes, as ``git hash-object`` computes it.

    Written here on purpose rather than imported from ``hfevol.publish.target``: the test Hub
    checks the ids the publisher sends, so it must not share the code that computes them.
    """
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def valid_ref_name(name: str) -> bool:
    return bool(_REF_NAME.match(name)) and not name.startswith("refs/")


@dataclass
class FileEntry:
    oid: str
    """Git blob id (of the bytes, or of the LFS pointer)."""
    size: int
    lfs: str | None = None
    """sha256 of the content for LFS files."""

    def as_api(self, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "file", "oid": self.oid, "size": self.size, "path": path}
        if self.lfs:
            pointer = LFS_POINTER.format(oid=self.lfs, size=self.size).encode()
            out["lfs"] = {"oid": self.lfs, "size": self.size, "pointerSize": len(pointer)}
        return out


@dataclass
class Commit:
    id: str
    parents: list[str]
    title: str
    message: str
    date: str
    author: str
    files: dict[str, FileEntry]

    def as_api(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "message": self.message, "date": self.date, "authors": [{"user": self.author}]}

    def folders(self) -> set[str]:
        out: set[str] = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return out

    def tree_id(self, folder: str) -> str:
        prefix = folder + "/" if folder else ""
        listing = sorted((p, f.oid) for p, f in self.files.items() if p.startswith(prefix))
        return hashlib.sha1(json.dumps(listing).encode()).hexdigest()


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    pull_requests: dict[int, str] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    def resolve(self, revision: str) -> Commit:
        """A branch, a tag, ``refs/heads/x``, ``refs/tags/x``, ``refs/pr/N`` or a full commit id."""
        oid = None
        if revision in self.branches:
            oid = self.branches[revision]
        elif revision in self.tags:
            oid = self.tags[revision]
        elif revision.startswith("refs/heads/"):
            oid = self.branches.get(revision[len("refs/heads/") :])
        elif revision.startswith("refs/tags/"):
            oid = self.tags.get(revision[len("refs/tags/") :])
        elif revision.startswith("refs/pr/") and revision[len("refs/pr/") :].isdigit():
            oid = self.pull_requests.get(int(revision[len("refs/pr/") :]))
        elif _HEX40.match(revision) and revision in self.commits:
            oid = revision
        if oid is None:
            raise StoreError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.commits[oid]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class HubStore:
    """Thread-safe repositories plus blob storage under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "lfs").mkdir(parents=True, exist_ok=True)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.RLock()

    # -- blobs ------------------------------------------------------------------------
    def put_blob(self, data: bytes) -> str:
        oid = git_blob_id(data)
        (self.root / "blobs" / oid).write_bytes(data)
        return oid

    def put_lfs(self, sha256: str, data: bytes) -> None:
        tmp = self.root / "lfs" / f"{sha256}.tmp-{threading.get_ident()}"
        tmp.write_bytes(data)
        tmp.replace(self.root / "lfs" / sha256)

    def has_lfs(self, sha256: str) -> int | None:
        path = self.root / "lfs" / sha256
        return path.stat().st_size if path.is_file() else None

    def read(self, entry: FileEntry) -> bytes:
        return (self.root / ("lfs" if entry.lfs else "blobs") / (entry.lfs or entry.oid)).read_bytes()

    # -- repositories ---------------------------------------------------------------------
    def create_repo(self, repo_type: str, repo_id: str, private: bool, author: str) -> Repo:
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise StoreError(409, f"You already created this {repo_type} repo")
            repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, created_at=_now())
            entry = FileEntry(oid=self.put_blob(INITIAL_GITATTRIBUTES), size=len(INITIAL_GITATTRIBUTES))
            first = self._new_commit([], "initial commit", "", author, {".gitattributes": entry})
            repo.commits[first.id] = first
            repo.branches["main"] = first.id
            self.repos[(repo_type, repo_id)] = repo
            self.save()
            return repo

    def get(self, repo_type: str, repo_id: str) -> Repo | None:
        return self.repos.get((repo_type, repo_id))

    def _new_commit(self, parents: list[str], title: str, message: str, author: str, files: dict[str, FileEntry]) -> Commit:
        date = _now()
        body = json.dumps([parents, title, message, author, date, sorted((p, f.oid) for p, f in files.items()), time.perf_counter_ns()])
        return Commit(id=hashlib.sha1(body.encode()).hexdigest(), parents=parents, title=title, message=message, date=date, author=author, files=files)

    def commit(
        self,
        repo: Repo,
        revision: str,
        *,
        title: str,
        message: str,
        author: str,
        operations: list[tuple[str, str, Any]],
        parent_commit: str | None,
        create_pr: bool,
    ) -> tuple[Commit, int | None]:
        """Apply ``operations`` (("add", path, FileEntry) / ("delete", path, is_folder)) atomically."""
        with self.lock:
            if revision in repo.tags or revision.startswith("refs/tags/"):
                raise StoreError(400, f"Cannot commit to a tag: {revision}")
            base = repo.resolve(revision)
            if revision.startswith("refs/pr/"):
                target = ("pr", int(revision.split("/")[-1]))
            elif revision in repo.branches or revision.startswith("refs/heads/"):
                target = ("branch", revision.removeprefix("refs/heads/"))
            else:
                raise StoreError(400, f"Can only commit to a branch or a pull request ref, not {revision}")
            if parent_commit is not None and parent_commit != base.id:
                raise StoreError(412, f"A commit has happened since {parent_commit}. Please refresh and try again.")
            files = dict(base.files)
            for kind, path, value in operations:
                if kind == "add":
                    files[path] = value
                elif value:  # a folder
                    doomed = [p for p in files if p.startswith(path.rstrip("/") + "/")]
                    if not doomed:
                        raise StoreError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in doomed:
                        del files[p]
                else:
                    if path not in files:
                        raise StoreError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del files[path]
            new = self._new_commit([base.id], title, message, author, files)
            repo.commits[new.id] = new
            pr_num = None
            if create_pr:
                pr_num = max(repo.pull_requests, default=0) + 1
                repo.pull_requests[pr_num] = new.id
            elif target[0] == "pr":
                repo.pull_requests[target[1]] = new.id
            else:
                repo.branches[target[1]] = new.id
            self.save()
            return new, pr_num

    def save(self) -> None:
        """Write the repository table as JSON (for inspection; the store lives in memory)."""
        with self.lock:
            state = [
                {**{k: v for k, v in asdict(r).items() if k != "commits"}, "commits": {cid: asdict(c) for cid, c in r.commits.items()}}
                for r in self.repos.values()
            ]
            tmp = self.root / "repos.json.tmp"
            tmp.write_text(json.dumps(state, indent=1, default=str))
            tmp.replace(self.root / "repos.json")
