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

The request handling is split by what it serves: ``handler`` reads the URL and calls a
route from ``repo_routes``, ``read_routes``, ``upload_routes`` or
``ref_routes``, which share the helpers in ``request``. ``store`` keeps the
repositories and blobs, and ``metadata`` checks dataset card metadata.

Example::

    with HubServer(tmp_path / "hub", tokens={"hf_test": "alice"}) as hub:
        os.environ.update(hub.env())
        ...
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

from .handler import HubHandler
from .store import HubStore, Repo


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
