"""The test Hub's upload routes: ``preupload``, the LFS batch API with basic transfer
(batch, upload, verify), and the NDJSON ``commit``.

LFS upload links are signed with the server's secret, so only links the batch answer gave
out are accepted. A commit is parsed and checked line by line before the repository changes:
a malformed line is a 400, an LFS file that was never uploaded (or of another size) a 422.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from typing import Any

from .request import URL_PREFIX, HubRequest, Reply, error
from .store import LFS_POINTER, Commit, FileEntry, git_blob_id

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_LFS_EXTENSIONS = (".parquet", ".arrow", ".png", ".jpg", ".bin", ".safetensors", ".gz", ".zip")
_REGULAR_MAX = 10 * 1024 * 1024


class UploadRoutes(HubRequest):
    def preupload(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        commit = repo.resolve(revision)
        payload = self.json_body()
        files = payload.get("files") if isinstance(payload, dict) else None
        if not isinstance(files, list):
            raise error(400, '"files" must be a list')
        out = []
        for item in files:
            if not (isinstance(item, dict) and isinstance(item.get("path"), str) and isinstance(item.get("size"), int) and isinstance(item.get("sample"), str)):
                raise error(400, 'each file needs "path", "size" and "sample"')
            try:
                sample = base64.b64decode(item["sample"], validate=True)
            except binascii.Error as exc:
                raise error(400, f'"sample" of {item["path"]} is not base64') from exc
            lfs = item["path"].lower().endswith(_LFS_EXTENSIONS) or item["size"] > _REGULAR_MAX or b"\0" in sample
            existing = commit.files.get(item["path"])
            oid = None
            if existing is not None:
                oid = existing.lfs if lfs else (None if existing.lfs else existing.oid)
            out.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        raise Reply(200, {"files": out, "commitOid": commit.id})

    def lfs_batch(self, repo_type: str, repo_id: str) -> None:
        self.repo(repo_type, repo_id, write=True)
        payload = self.json_body()
        if not isinstance(payload, dict) or payload.get("operation") != "upload" or not isinstance(payload.get("objects"), list):
            raise error(422, 'expected {"operation": "upload", "objects": [...]}')
        if payload.get("hash_algo", "sha256") != "sha256" or "basic" not in payload.get("transfers", ["basic"]):
            raise error(422, "only sha256 objects and the basic transfer are supported")
        objects = []
        for obj in payload["objects"]:
            oid, size = (obj.get("oid"), obj.get("size")) if isinstance(obj, dict) else (None, None)
            if not (isinstance(oid, str) and _SHA256.match(oid) and isinstance(size, int) and size >= 0):
                raise error(422, f"invalid LFS object {obj!r}")
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if self.hub.store.has_lfs(oid) != size:
                base = self.hub.url
                entry["actions"] = {
                    "upload": {"href": f"{base}/lfs-upload/{oid}?size={size}&sig={self.hub._sign(oid)}", "header": {}},
                    "verify": {"href": f"{base}/{URL_PREFIX[repo_type]}{repo_id}.git/info/lfs/objects/verify", "header": {}},
                }
            objects.append(entry)
        raise Reply(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def lfs_upload(self, oid: str) -> None:
        sig = self.query.get("sig", [""])[0]
        size = self.query.get("size", [""])[0]
        if not (_SHA256.match(oid) and hmac.compare_digest(sig, self.hub._sign(oid))):
            raise error(403, "Invalid or expired upload signature")
        data = self.body()
        if str(len(data)) != size or hashlib.sha256(data).hexdigest() != oid:
            raise error(400, "The uploaded content does not match the announced oid and size")
        self.hub.store.put_lfs(oid, data)
        raise Reply(200, b"")

    def lfs_verify(self, repo_type: str, repo_id: str) -> None:
        self.repo(repo_type, repo_id, write=True)
        payload = self.json_body()
        oid, size = (payload.get("oid"), payload.get("size")) if isinstance(payload, dict) else (None, None)
        if not isinstance(oid, str) or self.hub.store.has_lfs(oid) != size:
            raise error(404, f"LFS object {oid} not found or of another size")
        raise Reply(200, {})

    def commit(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        user = self.user(required=True)
        if "application/x-ndjson" not in self.headers.get("Content-Type", ""):
            raise error(400, "A commit must be sent as application/x-ndjson")
        header, operations = self._parse_commit(self.body())
        create_pr = self.query.get("create_pr", ["0"])[0] in ("1", "true", "True")

        def apply() -> tuple[Commit, int | None]:
            return self.hub.store.commit(
                repo, revision, title=header["summary"], message=header.get("description") or "", author=user,  # type: ignore[arg-type]
                operations=operations, parent_commit=header.get("parentCommit"), create_pr=create_pr,
            )  # fmt: skip

        commit, pr_num = self.maybe_fail("commit", apply)
        prefix = f"{self.hub.url}/{URL_PREFIX[repo_type]}{repo_id}"
        out = {"success": True, "commitOid": commit.id, "commitUrl": f"{prefix}/commit/{commit.id}"}
        if pr_num is not None:
            out["pullRequestUrl"] = f"{prefix}/discussions/{pr_num}"
        raise Reply(200, out)

    def _parse_commit(self, raw: bytes) -> tuple[dict[str, Any], list[tuple[str, str, Any]]]:
        lines = [line for line in raw.split(b"\n") if line.strip()]
        items = []
        for n, line in enumerate(lines, 1):
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(400, f"line {n} of the commit is not JSON: {exc}") from exc
            if not (isinstance(item, dict) and isinstance(item.get("key"), str) and isinstance(item.get("value"), dict)):
                raise error(400, f'line {n} of the commit must be {{"key": str, "value": object}}')
            items.append(item)
        if not items or items[0]["key"] != "header":
            raise error(400, "The first line of a commit must be its header")
        header = items[0]["value"]
        if not isinstance(header.get("summary"), str) or not header["summary"].strip():
            raise error(400, "The commit header needs a non-empty summary")
        operations: list[tuple[str, str, Any]] = []
        seen: set[str] = set()
        for n, item in enumerate(items[1:], 2):
            key, value = item["key"], item["value"]
            path = value.get("path")
            if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/") or "\\" in path:
                raise error(400, f"line {n}: invalid path {path!r}")
            if path in seen:
                raise error(400, f"line {n}: {path} appears twice in one commit")
            seen.add(path)
            if key == "file":
                if value.get("encoding") != "base64" or not isinstance(value.get("content"), str):
                    raise error(400, f'line {n}: a file needs base64 "content" and "encoding": "base64"')
                try:
                    data = base64.b64decode(value["content"], validate=True)
                except binascii.Error as exc:
                    raise error(400, f"line {n}: content of {path} is not base64") from exc
                operations.append(("add", path, FileEntry(oid=self.hub.store.put_blob(data), size=len(data))))
            elif key == "lfsFile":
                oid, algo = value.get("oid"), value.get("algo")
                if algo != "sha256" or not isinstance(oid, str) or not _SHA256.match(oid):
                    raise error(400, f'line {n}: an lfsFile needs "algo": "sha256" and a sha256 "oid"')
                size = self.hub.store.has_lfs(oid)
                if size is None:
                    raise error(422, f"line {n}: LFS object {oid} for {path} was never uploaded")
                if value.get("size") is not None and value["size"] != size:
                    raise error(422, f"line {n}: {path} announces {value['size']} bytes; the LFS object has {size}")
                pointer = LFS_POINTER.format(oid=oid, size=size).encode()
                operations.append(("add", path, FileEntry(oid=git_blob_id(pointer), size=size, lfs=oid)))
            elif key in ("deletedFile", "deletedFolder"):
                operations.append(("delete", path, key == "deletedFolder"))
            else:
                raise error(400, f"line {n}: unknown operation {key!r}")
        if not operations:
            raise error(400, "A commit needs at least one operation")
        return header, operations
