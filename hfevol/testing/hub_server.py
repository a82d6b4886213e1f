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

The request handling is split by what it serves: the handler below reads the URL and calls
a route from ``hub_repo_routes``, ``hub_read_routes``, ``hub_upload_routes`` or
``hub_ref_routes``, which share the helpers in ``hub_request``. ``hub_store`` keeps the
repositories and blobs, and ``hub_metadata`` checks dataset card metadata.

Example::

    with HubServer(tmp_path / "hub", tokens={"hf_test": "alice"}) as hub:
        os.environ.update(hub.env())
        ...
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import socket
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .hub_read_routes import ReadRoutes
from .hub_ref_routes import RefRoutes
from .hub_repo_routes import RepoRoutes
from .hub_request import Drop, Reply, error
from .hub_store import HubStore, Repo, StoreError
from .hub_upload_routes import UploadRoutes

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
        status = 500
        try:
            try:
                self._route(method)
            except StoreError as exc:
                raise error(exc.status, exc.message, exc.code) from exc
            raise error(404, f"Sorry, we can't find the page you are looking for: {split.path}")
        except Reply as reply:
            status = reply.status
            self._send(reply, head=method == "HEAD")
        except Drop:
            status = 0
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        finally:
            self.hub.requests.append((method, split.path, status))

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
        repo_type = _TYPES.get(s[0], None) if s else None
        parts = s[1:] if repo_type else s
        repo_type = repo_type or "model"
        if len(parts) >= 5 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"] and method == "POST":
            self.lfs_batch(repo_type, f"{parts[0]}/{parts[1][:-4]}")
        if len(parts) >= 5 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "verify"] and method == "POST":
            self.lfs_verify(repo_type, f"{parts[0]}/{parts[1][:-4]}")
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            self.resolve(repo_type, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))


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
        handler = type("Handler", (HubHandler,), {"hub": self})
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
