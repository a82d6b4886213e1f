"""What a test Hub route sees of its request, and how it answers.

A route reads the body (plain or chunked) and its JSON, asks who the token belongs to and
whether that user may see or write a repository, and answers by raising :class:`Reply`
(or :func:`error`, which carries the Hub's ``X-Error-Message`` and ``X-Error-Code``
headers). :meth:`HubRequest.maybe_fail` is where :meth:`HubServer.fail_next` takes effect:
it raises :class:`Drop` to close the connection without an answer.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from .store import Repo

if TYPE_CHECKING:
    from .server import HubServer

URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
"""What comes before ``namespace/name`` in a repository's URL, by repository type."""


class Reply(Exception):
    """Raised by a route to answer at once."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


class Drop(Exception):
    """Close the connection without answering."""


def error(status: int, message: str, code: str | None = None) -> Reply:
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return Reply(status, {"error": message}, headers)


class HubRequest(BaseHTTPRequestHandler):
    """The request helpers that every group of routes uses; :class:`HubHandler` sets the fields."""

    hub: HubServer
    query: dict[str, list[str]]
    _body: bytes | None

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
            raise error(400, f"Invalid JSON body: {exc}") from exc

    def user(self, *, required: bool) -> str | None:
        """The token's user; an unknown token is refused even on public reads, as on the Hub."""
        auth = self.headers.get("Authorization")
        if auth is None:
            if required:
                raise error(401, "Invalid username or password.")
            return None
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        if token is None or token not in self.hub.tokens:
            raise error(401, "Invalid credentials in Authorization header")
        return self.hub.tokens[token]

    def can_write(self, user: str, namespace: str) -> bool:
        return user == namespace or user in self.hub.orgs.get(namespace, [])

    def repo(self, repo_type: str, repo_id: str, *, write: bool = False) -> Repo:
        user = self.user(required=write)
        repo = self.hub.store.get(repo_type, repo_id)
        visible = repo is not None and (not repo.private or (user is not None and self.can_write(user, repo.namespace)))
        if not visible:
            raise error(404, "Repository not found", "RepoNotFound")
        if write and not self.can_write(user, repo.namespace):  # type: ignore[arg-type]
            raise error(403, "You don't have the rights to write to this repository")
        return repo

    def maybe_fail(self, route: str, apply: Any) -> Any:
        failure = self.hub._take_failure(route)
        if failure is None:
            return apply()
        if failure.after_apply:
            apply()
        raise Drop()
