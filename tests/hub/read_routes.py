"""The test Hub's read routes: ``paths-info``, ``tree``, ``resolve`` (with byte ranges)
and a revision's commit history.

Each one resolves the revision first, so an unknown revision is a 404 ``RevisionNotFound``.
``tree`` and ``resolve`` answer 404 ``EntryNotFound`` for a path that is not there;
``paths-info`` leaves such paths out of its answer.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

from .request import HubRequest, Reply, error
from .store import Commit


class ReadRoutes(HubRequest):
    def _entries(self, commit: Commit, paths: list[str], expand: bool) -> list[dict[str, Any]]:
        folders = commit.folders()
        out = []
        for path in paths:
            if path in commit.files:
                entry = commit.files[path].as_api(path)
            elif path in folders:
                entry = {"type": "directory", "oid": commit.tree_id(path), "size": 0, "path": path}
            else:
                continue
            if expand:
                entry["lastCommit"] = {"id": commit.id, "title": commit.title, "date": commit.date}
            out.append(entry)
        return out

    def paths_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.repo(repo_type, repo_id)
        commit = repo.resolve(revision)
        content_type = self.headers.get("Content-Type", "")
        if "application/json" in content_type:
            payload = self.json_body()
            paths, expand = payload.get("paths", []), bool(payload.get("expand"))
        else:
            form = parse_qs(self.body().decode())
            paths, expand = form.get("paths", []), form.get("expand", ["False"])[0].lower() == "true"
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise error(400, '"paths" must be a list of strings')
        raise Reply(200, self._entries(commit, [p.strip("/") for p in paths], expand))

    def tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self.repo(repo_type, repo_id)
        commit = repo.resolve(revision)
        path = path.strip("/")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        expand = self.query.get("expand", ["false"])[0].lower() in ("1", "true")
        folders = commit.folders()
        if path and path not in folders:
            raise error(404, f"Entry not found: {path}", "EntryNotFound")
        prefix = path + "/" if path else ""
        children = sorted(p for p in [*commit.files, *folders] if p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :]))
        raise Reply(200, self._entries(commit, children, expand))

    def resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self.repo(repo_type, repo_id)
        commit = repo.resolve(revision)
        entry = commit.files.get(path)
        if entry is None:
            raise error(404, f"Entry not found: {path}", "EntryNotFound")
        data = self.hub.store.read(entry)
        headers = {"X-Repo-Commit": commit.id, "ETag": f'"{entry.lfs or entry.oid}"', "Accept-Ranges": "bytes"}
        if entry.lfs:
            headers["X-Linked-Etag"] = f'"{entry.lfs}"'
            headers["X-Linked-Size"] = str(entry.size)
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if match and (match.group(1) or match.group(2)):
            size = len(data)
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
            else:
                start, end = max(size - int(match.group(2)), 0), size - 1
            if start >= size or start > end:
                raise Reply(416, b"", {"Content-Range": f"bytes */{size}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            raise Reply(206, data[start : end + 1], headers)
        raise Reply(200, data, headers)

    def commits(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.repo(repo_type, repo_id)
        commit: Commit | None = repo.resolve(revision)
        out = []
        while commit is not None:
            out.append(commit.as_api())
            commit = repo.commits[commit.parents[0]] if commit.parents else None
        raise Reply(200, out)
