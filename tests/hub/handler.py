"""The test Hub's HTTP handler: it reads the URL, calls the route, and writes the answer.

The routes themselves live in groups, one module each: repositories and account
(``repo_routes``), reading files and history (``read_routes``), uploads and commits
(``upload_routes``) and refs (``ref_routes``). Each request is logged to
:attr:`HubServer.requests` with its status (0 for a dropped connection).
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .read_routes import ReadRoutes
from .ref_routes import RefRoutes
from .repo_routes import RepoRoutes
from .request import Drop, Reply, error
from .store import StoreError
from .upload_routes import UploadRoutes

_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}


class HubHandler(RepoRoutes, ReadRoutes, UploadRoutes, RefRoutes):
    """One connection to the test Hub; :class:`HubServer` subclasses it with ``hub`` set."""

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
        self._body = None
        # Each request is logged before its answer goes out: a client that has its answer
        # always finds the request in HubServer.requests.
        try:
            try:
                self._route(method)
            except StoreError as exc:
                raise error(exc.status, exc.message, exc.code) from exc
            raise error(404, f"Sorry, we can't find the page you are looking for: {split.path}")
        except Reply as reply:
            self.hub.requests.append((method, split.path, reply.status))
            self._send(reply, head=method == "HEAD")
        except Drop:
            self.hub.requests.append((method, split.path, 0))
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except BaseException:
            self.hub.requests.append((method, split.path, 500))
            raise

    def _send(self, reply: Reply, *, head: bool) -> None:
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
        repo_type = _TYPES.get(s[0]) if s else None
        parts = s[1:] if repo_type else s
        repo_type = repo_type or "model"
        if len(parts) >= 5 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"] and method == "POST":
            self.lfs_batch(repo_type, f"{parts[0]}/{parts[1][:-4]}")
        if len(parts) >= 5 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "verify"] and method == "POST":
            self.lfs_verify(repo_type, f"{parts[0]}/{parts[1][:-4]}")
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            self.resolve(repo_type, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
