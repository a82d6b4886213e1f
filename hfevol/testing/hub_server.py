"""A strict local stand-in for the Hugging Face Hub's HTTP API, on 127.0.0.1.

It speaks the subset that unmodified ``huggingface_hub`` 2.x and ``datasets`` 5.x use to
publish and load a dataset: ``whoami-v2``, repo creation and settings, ``preupload``, the
NDJSON ``commit``, the LFS batch API with basic transfer, ``paths-info``, ``tree``,
``resolve`` (with ranges), ``refs``, ``commits``, tags, branches, pull-request refs,
dataset info, and ``validate-yaml``. Point the clients at it with ``HF_ENDPOINT`` and
``HF_HUB_DISABLE_XET=1`` (:meth:`HubServer.env`).

Strictness, as on the Hub: an unknown token gets 401; a write needs a token whose user
owns the namespace; an unknown repo, revision or file gets 404 with ``X-Error-Code``
(``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``); a malformed commit gets 400;
a commit naming an LFS object that was never uploaded gets 422; a private repo is
invisible without its owner's token.

For tests: :attr:`HubServer.requests` logs method, path and status of every request (never
headers or bodies, so never a token); :meth:`HubServer.fail_next` makes the server drop the
connection on the next request to a route, before or after applying it.

Example::

    with HubServer(tmp_path / "hub", tokens={"hf_test": "alice"}) as hub:
        os.environ.update(hub.env())
        ...
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .hub_metadata import validate_card_yaml
from .hub_store import LFS_POINTER, Commit, FileEntry, HubStore, Repo, StoreError, git_blob_id, valid_ref_name

_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_NAME = re.compile(r"^(?!.*(--|\.\.))[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_LFS_EXTENSIONS = (".parquet", ".arrow", ".png", ".jpg", ".bin", ".safetensors", ".gz", ".zip")
_REGULAR_MAX = 10 * 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default backlog of 5 stalls bursts of connections
    allow_reuse_address = True


@dataclass
class _Failure:
    route: str
    after_apply: bool


class HubServer:
    """Run the test Hub in a background thread; ``tokens`` maps token -> user name.

    ``orgs`` maps an organization to its members. ``root`` holds the stored blobs and the
    repository table.
    """

    def __init__(self, root: str | Path, tokens: dict[str, str] | None = None, orgs: dict[str, list[str]] | None = None) -> None:
        self.store = HubStore(Path(root))
        self.tokens = dict(tokens or {})
        self.orgs = {org: list(members) for org, members in (orgs or {}).items()}
        self.requests: list[tuple[str, str, int]] = []
        self._failures: list[_Failure] = []
        self._secret = secrets.token_bytes(16)
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> "HubServer":
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="test-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "the server is not running"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def env(self) -> dict[str, str]:
        """The environment that points ``huggingface_hub`` and ``datasets`` at this server."""
        return {"HF_ENDPOINT": self.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0"}

    # -- test hooks -----------------------------------------------------------------------
    def fail_next(self, route: str, *, after_apply: bool = False) -> None:
        """Drop the connection, without an answer, on the next request to ``route``.

        ``route`` is a route name such as ``commit``, ``tag`` (creating one), ``delete-tag``,
        ``lfs-upload`` or ``preupload``.
        With ``after_apply`` the request takes effect first, as when a response is lost.
        """
        with self._lock:
            self._failures.append(_Failure(route, after_apply))

    def _take_failure(self, route: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.route == route:
                    self._failures.remove(failure)
                    return failure
        return None

    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        repo = self.store.get(repo_type, repo_id)
        if repo is None:
            raise KeyError(repo_id)
        return repo

    def file_at(self, repo_id: str, revision: str, path: str, repo_type: str = "dataset") -> bytes:
        """The bytes of ``path`` at ``revision`` (for assertions)."""
        commit = self.repo(repo_id, repo_type).resolve(revision)
        return self.store.read(commit.files[path])

    def _sign(self, oid: str) -> str:
        return hmac.new(self._secret, oid.encode(), hashlib.sha256).hexdigest()


class _Reply(Exception):
    """Raised by a route to answer at once."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


class _Drop(Exception):
    """Close the connection without answering."""


def _error(status: int, message: str, code: str | None = None) -> _Reply:
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return _Reply(status, {"error": message}, headers)


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # Nagle + delayed ACKs add ~40 ms per kept-alive request

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet; see HubServer.requests
        pass

    # -- plumbing ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        self.segments = [unquote(s) for s in split.path.split("/")[1:]]
        self._body: bytes | None = None
        status = 500
        try:
            try:
                self._route(method)
            except StoreError as exc:
                raise _error(exc.status, exc.message, exc.code) from exc
            raise _error(404, f"Sorry, we can't find the page you are looking for: {split.path}")
        except _Reply as reply:
            status = reply.status
            self._send(reply, head=method == "HEAD")
        except _Drop:
            status = 0
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        finally:
            self.hub.requests.append((method, split.path, status))

    def _send(self, reply: _Reply, *, head: bool) -> None:
        self.body()  # an unread request body would corrupt the next request on this connection
        body = reply.body
        if isinstance(body, (dict, list)):
            payload = json.dumps(body).encode()
            content_type = "application/json; charset=utf-8"
        else:
            payload = body or b""
            content_type = "application/octet-stream"
        self.send_response(reply.status)
        headers = {"Content-Type": content_type, "Content-Length": str(len(payload)), **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(payload)

    def body(self) -> bytes:
        if self._body is None:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
                self._body = b"".join(parts)
            else:
                self._body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return self._body

    def json_body(self) -> Any:
        try:
            return json.loads(self.body() or b"null")
        except json.JSONDecodeError as exc:
            raise _error(400, f"Invalid JSON body: {exc}") from exc

    def user(self, *, required: bool) -> str | None:
        """The token's user; an unknown token is refused even on public reads, as on the Hub."""
        auth = self.headers.get("Authorization")
        if auth is None:
            if required:
                raise _error(401, "Invalid username or password.")
            return None
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        if token is None or token not in self.hub.tokens:
            raise _error(401, "Invalid credentials in Authorization header")
        return self.hub.tokens[token]

    def can_write(self, user: str, namespace: str) -> bool:
        return user == namespace or user in self.hub.orgs.get(namespace, [])

    def repo(self, repo_type: str, repo_id: str, *, write: bool = False) -> Repo:
        user = self.user(required=write)
        repo = self.hub.store.get(repo_type, repo_id)
        visible = repo is not None and (not repo.private or (user is not None and self.can_write(user, repo.namespace)))
        if not visible:
            raise _error(404, "Repository not found", "RepoNotFound")
        if write and not self.can_write(user, repo.namespace):  # type: ignore[arg-type]
            raise _error(403, "You don't have the rights to write to this repository")
        return repo

    def maybe_fail(self, route: str, apply: Any) -> Any:
        failure = self.hub._take_failure(route)
        if failure is None:
            return apply()
        if failure.after_apply:
            apply()
        raise _Drop()

    # -- routing ------------------------------------------------------------------------------
    def _route(self, method: str) -> None:
        s = self.segments
        if s[:2] == ["api", "whoami-v2"] and method == "GET":
            self.whoami()
        if s[:3] == ["api", "repos", "create"] and method == "POST":
            self.create_repo()
        if s[:2] == ["api", "validate-yaml"] and method == "POST":
            self.validate_yaml()
        if s[:1] == ["lfs-upload"] and len(s) == 2 and method == "PUT":
            self.maybe_fail("lfs-upload", lambda: self.lfs_upload(s[1]))
        if len(s) >= 4 and s[0] == "api" and s[1] in _TYPES:
            repo_type, repo_id, rest = _TYPES[s[1]], f"{s[2]}/{s[3]}", s[4:]
            self.api(method, repo_type, repo_id, rest)
        self.git_or_resolve(method)

    def api(self, method: str, repo_type: str, repo_id: str, rest: list[str]) -> None:
        route = rest[0] if rest else ""
        arg = rest[1] if len(rest) > 1 else None
        if route == "" and method == "GET":
            self.repo_info(repo_type, repo_id, "main")
        if route == "revision" and arg and method == "GET":
            self.repo_info(repo_type, repo_id, arg)
        if route == "settings" and method == "PUT":
            self.settings(repo_type, repo_id)
        if route == "refs" and method == "GET":
            self.refs(repo_type, repo_id)
        if arg is None:
            return
        if route == "preupload" and method == "POST":
            self.maybe_fail("preupload", lambda: self.preupload(repo_type, repo_id, arg))
        if route == "commit" and method == "POST":
            self.commit(repo_type, repo_id, arg)
        if route == "paths-info" and method == "POST":
            self.paths_info(repo_type, repo_id, arg)
        if route == "tree" and method == "GET":
            self.tree(repo_type, repo_id, arg, "/".join(rest[2:]))
        if route == "commits" and method == "GET":
            self.commits(repo_type, repo_id, arg)
        if route == "tag" and method in ("POST", "DELETE"):
            self.maybe_fail("tag" if method == "POST" else "delete-tag", lambda: self.tag(method, repo_type, repo_id, arg))
        if route == "branch" and method in ("POST", "DELETE"):
            self.branch(method, repo_type, repo_id, arg)

    def git_or_resolve(self, method: str) -> None:
        s = self.segments
        repo_type = _TYPES.get(s[0], None) if s else None
        parts = s[1:] if repo_type else s
        repo_type = repo_type or "model"
        if len(parts) >= 5 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"] and method == "POST":
            self.lfs_batch(repo_type, f"{parts[0]}/{parts[1][:-4]}")
        if len(parts) >= 5 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "verify"] and method == "POST":
            self.lfs_verify(repo_type, f"{parts[0]}/{parts[1][:-4]}")
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            self.resolve(repo_type, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))

    # -- account and repositories ----------------------------------------------------------------
    def whoami(self) -> None:
        user = self.user(required=True)
        orgs = [{"name": org, "type": "org"} for org, members in self.hub.orgs.items() if user in members]
        raise _Reply(200, {"type": "user", "id": hashlib.sha1(user.encode()).hexdigest()[:24], "name": user, "fullname": user, "orgs": orgs,
                           "auth": {"type": "access_token", "accessToken": {"displayName": "test-hub token", "role": "write"}}})  # fmt: skip

    def create_repo(self) -> None:
        user = self.user(required=True)
        payload = self.json_body()
        if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
            raise _error(400, '"name" is required')
        name, namespace = payload["name"], payload.get("organization") or user
        repo_type = payload.get("type") or "model"
        if repo_type not in _PREFIX:
            raise _error(400, f'"type" must be one of {sorted(_PREFIX)}')
        if not _NAME.match(name) or not _NAME.match(namespace):
            raise _error(400, f"Invalid repo name {namespace}/{name}")
        if not self.can_write(user, namespace):  # type: ignore[arg-type]
            raise _error(403, f"You don't have the rights to create a repo under the namespace {namespace!r}")
        private = payload.get("visibility") == "private" or payload.get("private") is True
        repo_id = f"{namespace}/{name}"
        url = f"{self.hub.url}/{_PREFIX[repo_type]}{repo_id}"
        try:
            self.hub.store.create_repo(repo_type, repo_id, private, user)  # type: ignore[arg-type]
        except StoreError as exc:
            raise _Reply(409, {"error": exc.message, "url": url}, {"X-Error-Message": exc.message}) from exc
        raise _Reply(200, {"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]})

    def settings(self, repo_type: str, repo_id: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        payload = self.json_body()
        if not isinstance(payload, dict) or not payload:
            raise _error(400, "At least one setting must be updated")
        if "visibility" in payload:
            if payload["visibility"] not in ("private", "public"):
                raise _error(400, '"visibility" must be "private" or "public"')
            repo.private = payload["visibility"] == "private"
        if "private" in payload:
            if not isinstance(payload["private"], bool):
                raise _error(400, '"private" must be a boolean')
            repo.private = payload["private"]
        self.hub.store.save()
        raise _Reply(200, {})

    def repo_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        import yaml

        repo = self.repo(repo_type, repo_id)
        commit = repo.resolve(revision)
        card = None
        if "README.md" in commit.files:
            text = self.hub.store.read(commit.files["README.md"]).decode("utf-8", "replace")
            end = text.find("\n---", 4)
            if text.startswith("---\n") and end > 0:
                card = yaml.safe_load(text[4:end])
        info = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "author": repo.namespace, "sha": commit.id,
            "private": repo.private, "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
            "createdAt": repo.created_at, "lastModified": commit.date, "cardData": card,
            "siblings": [{"rfilename": p} for p in sorted(commit.files)],
        }  # fmt: skip
        raise _Reply(200, info)

    def refs(self, repo_type: str, repo_id: str) -> None:
        repo = self.repo(repo_type, repo_id)
        out = {
            "branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c} for b, c in sorted(repo.branches.items())],
            "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": c} for t, c in sorted(repo.tags.items())],
            "converts": [],
        }
        if self.query.get("include_prs", ["0"])[0] in ("1", "true", "True"):
            out["pullRequests"] = [{"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": c} for n, c in sorted(repo.pull_requests.items())]
        raise _Reply(200, out)

    def commits(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.repo(repo_type, repo_id)
        commit: Commit | None = repo.resolve(revision)
        out = []
        while commit is not None:
            out.append(commit.as_api())
            commit = repo.commits[commit.parents[0]] if commit.parents else None
        raise _Reply(200, out)

    def tag(self, method: str, repo_type: str, repo_id: str, arg: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        with self.hub.store.lock:
            if method == "DELETE":
                if arg not in repo.tags:
                    raise _error(404, f"Invalid rev id: {arg}", "RevisionNotFound")
                del repo.tags[arg]
            else:
                payload = self.json_body()
                tag = payload.get("tag") if isinstance(payload, dict) else None
                if not isinstance(tag, str) or not valid_ref_name(tag):
                    raise _error(400, f"Invalid tag name: {tag!r}")
                commit = repo.resolve(arg)
                if tag in repo.tags:
                    raise _error(409, f"Tag {tag} already exists")
                if tag in repo.branches:
                    raise _error(409, f"A branch named {tag} already exists")
                repo.tags[tag] = commit.id
            self.hub.store.save()
        raise _Reply(200, {})

    def branch(self, method: str, repo_type: str, repo_id: str, name: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        with self.hub.store.lock:
            if method == "DELETE":
                if name not in repo.branches or name == "main":
                    raise _error(404 if name != "main" else 403, f"Cannot delete branch {name}", "RevisionNotFound" if name != "main" else None)
                del repo.branches[name]
            else:
                if not valid_ref_name(name):
                    raise _error(400, f"Invalid branch name: {name!r}")
                if name in repo.branches:
                    raise _error(409, f"Branch {name} already exists")
                payload = self.json_body() or {}
                start = repo.resolve(payload.get("startingPoint") or "main")
                repo.branches[name] = start.id
            self.hub.store.save()
        raise _Reply(200, {})

    def validate_yaml(self) -> None:
        self.user(required=False)
        payload = self.json_body()
        if not isinstance(payload, dict) or not isinstance(payload.get("content"), str):
            raise _error(400, '"content" must be a string')
        errors = validate_card_yaml(payload["content"])
        if errors:
            raise _Reply(400, {"errors": [{"message": e} for e in errors], "warnings": []})
        raise _Reply(200, {"errors": [], "warnings": []})

    # -- reading files ------------------------------------------------------------------------
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
            raise _error(400, '"paths" must be a list of strings')
        raise _Reply(200, self._entries(commit, [p.strip("/") for p in paths], expand))

    def tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self.repo(repo_type, repo_id)
        commit = repo.resolve(revision)
        path = path.strip("/")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        expand = self.query.get("expand", ["false"])[0].lower() in ("1", "true")
        folders = commit.folders()
        if path and path not in folders:
            raise _error(404, f"Entry not found: {path}", "EntryNotFound")
        prefix = path + "/" if path else ""
        children = sorted(p for p in [*commit.files, *folders] if p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :]))
        raise _Reply(200, self._entries(commit, children, expand))

    def resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self.repo(repo_type, repo_id)
        commit = repo.resolve(revision)
        entry = commit.files.get(path)
        if entry is None:
            raise _error(404, f"Entry not found: {path}", "EntryNotFound")
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
                raise _Reply(416, b"", {"Content-Range": f"bytes */{size}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            raise _Reply(206, data[start : end + 1], headers)
        raise _Reply(200, data, headers)

    # -- uploads --------------------------------------------------------------------------------
    def preupload(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        commit = repo.resolve(revision)
        payload = self.json_body()
        files = payload.get("files") if isinstance(payload, dict) else None
        if not isinstance(files, list):
            raise _error(400, '"files" must be a list')
        out = []
        for item in files:
            if not (isinstance(item, dict) and isinstance(item.get("path"), str) and isinstance(item.get("size"), int) and isinstance(item.get("sample"), str)):
                raise _error(400, 'each file needs "path", "size" and "sample"')
            try:
                sample = base64.b64decode(item["sample"], validate=True)
            except binascii.Error as exc:
                raise _error(400, f'"sample" of {item["path"]} is not base64') from exc
            lfs = item["path"].lower().endswith(_LFS_EXTENSIONS) or item["size"] > _REGULAR_MAX or b"\0" in sample
            existing = commit.files.get(item["path"])
            oid = None
            if existing is not None:
                oid = existing.lfs if lfs else (None if existing.lfs else existing.oid)
            out.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        raise _Reply(200, {"files": out, "commitOid": commit.id})

    def lfs_batch(self, repo_type: str, repo_id: str) -> None:
        self.repo(repo_type, repo_id, write=True)
        payload = self.json_body()
        if not isinstance(payload, dict) or payload.get("operation") != "upload" or not isinstance(payload.get("objects"), list):
            raise _error(422, 'expected {"operation": "upload", "objects": [...]}')
        if payload.get("hash_algo", "sha256") != "sha256" or "basic" not in payload.get("transfers", ["basic"]):
            raise _error(422, "only sha256 objects and the basic transfer are supported")
        objects = []
        for obj in payload["objects"]:
            oid, size = (obj.get("oid"), obj.get("size")) if isinstance(obj, dict) else (None, None)
            if not (isinstance(oid, str) and _SHA256.match(oid) and isinstance(size, int) and size >= 0):
                raise _error(422, f"invalid LFS object {obj!r}")
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if self.hub.store.has_lfs(oid) != size:
                base = self.hub.url
                entry["actions"] = {
                    "upload": {"href": f"{base}/lfs-upload/{oid}?size={size}&sig={self.hub._sign(oid)}", "header": {}},
                    "verify": {"href": f"{base}/{_PREFIX[repo_type]}{repo_id}.git/info/lfs/objects/verify", "header": {}},
                }
            objects.append(entry)
        raise _Reply(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def lfs_upload(self, oid: str) -> None:
        sig = self.query.get("sig", [""])[0]
        size = self.query.get("size", [""])[0]
        if not (_SHA256.match(oid) and hmac.compare_digest(sig, self.hub._sign(oid))):
            raise _error(403, "Invalid or expired upload signature")
        data = self.body()
        if str(len(data)) != size or hashlib.sha256(data).hexdigest() != oid:
            raise _error(400, "The uploaded content does not match the announced oid and size")
        self.hub.store.put_lfs(oid, data)
        raise _Reply(200, b"")

    def lfs_verify(self, repo_type: str, repo_id: str) -> None:
        self.repo(repo_type, repo_id, write=True)
        payload = self.json_body()
        oid, size = (payload.get("oid"), payload.get("size")) if isinstance(payload, dict) else (None, None)
        if not isinstance(oid, str) or self.hub.store.has_lfs(oid) != size:
            raise _error(404, f"LFS object {oid} not found or of another size")
        raise _Reply(200, {})

    def commit(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        user = self.user(required=True)
        if "application/x-ndjson" not in self.headers.get("Content-Type", ""):
            raise _error(400, "A commit must be sent as application/x-ndjson")
        header, operations = self._parse_commit(self.body())
        create_pr = self.query.get("create_pr", ["0"])[0] in ("1", "true", "True")

        def apply() -> tuple[Commit, int | None]:
            return self.hub.store.commit(
                repo, revision, title=header["summary"], message=header.get("description") or "", author=user,  # type: ignore[arg-type]
                operations=operations, parent_commit=header.get("parentCommit"), create_pr=create_pr,
            )  # fmt: skip

        commit, pr_num = self.maybe_fail("commit", apply)
        prefix = f"{self.hub.url}/{_PREFIX[repo_type]}{repo_id}"
        out = {"success": True, "commitOid": commit.id, "commitUrl": f"{prefix}/commit/{commit.id}"}
        if pr_num is not None:
            out["pullRequestUrl"] = f"{prefix}/discussions/{pr_num}"
        raise _Reply(200, out)

    def _parse_commit(self, raw: bytes) -> tuple[dict[str, Any], list[tuple[str, str, Any]]]:
        lines = [line for line in raw.split(b"\n") if line.strip()]
        items = []
        for n, line in enumerate(lines, 1):
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _error(400, f"line {n} of the commit is not JSON: {exc}") from exc
            if not (isinstance(item, dict) and isinstance(item.get("key"), str) and isinstance(item.get("value"), dict)):
                raise _error(400, f'line {n} of the commit must be {{"key": str, "value": object}}')
            items.append(item)
        if not items or items[0]["key"] != "header":
            raise _error(400, "The first line of a commit must be its header")
        header = items[0]["value"]
        if not isinstance(header.get("summary"), str) or not header["summary"].strip():
            raise _error(400, "The commit header needs a non-empty summary")
        operations: list[tuple[str, str, Any]] = []
        seen: set[str] = set()
        for n, item in enumerate(items[1:], 2):
            key, value = item["key"], item["value"]
            path = value.get("path")
            if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/") or "\\" in path:
                raise _error(400, f"line {n}: invalid path {path!r}")
            if path in seen:
                raise _error(400, f"line {n}: {path} appears twice in one commit")
            seen.add(path)
            if key == "file":
                if value.get("encoding") != "base64" or not isinstance(value.get("content"), str):
                    raise _error(400, f'line {n}: a file needs base64 "content" and "encoding": "base64"')
                try:
                    data = base64.b64decode(value["content"], validate=True)
                except binascii.Error as exc:
                    raise _error(400, f"line {n}: content of {path} is not base64") from exc
                operations.append(("add", path, FileEntry(oid=self.hub.store.put_blob(data), size=len(data))))
            elif key == "lfsFile":
                oid, algo = value.get("oid"), value.get("algo")
                if algo != "sha256" or not isinstance(oid, str) or not _SHA256.match(oid):
                    raise _error(400, f'line {n}: an lfsFile needs "algo": "sha256" and a sha256 "oid"')
                size = self.hub.store.has_lfs(oid)
                if size is None:
                    raise _error(422, f"line {n}: LFS object {oid} for {path} was never uploaded")
                if value.get("size") is not None and value["size"] != size:
                    raise _error(422, f"line {n}: {path} announces {value['size']} bytes; the LFS object has {size}")
                pointer = LFS_POINTER.format(oid=oid, size=size).encode()
                operations.append(("add", path, FileEntry(oid=git_blob_id(pointer), size=size, lfs=oid)))
            elif key in ("deletedFile", "deletedFolder"):
                operations.append(("delete", path, key == "deletedFolder"))
            else:
                raise _error(400, f"line {n}: unknown operation {key!r}")
        if not operations:
            raise _error(400, "A commit needs at least one operation")
        return header, operations

