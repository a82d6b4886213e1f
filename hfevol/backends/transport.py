"""All network I/O of the endpoint backends: one request path, pools, load balancing, retries, error mapping, counters.

Backends (``tgi.py``, ``openai.py``) only build requests and parse answers: a request is
an :class:`HttpCall` (method, path, JSON body), and its answer's JSON goes to the backend's
parser. The transport decides where a request goes, how often, and what a failure means:

- **One request path.** Every request, on every route, is one ``httpx2`` request sent by
  :meth:`Channel.send` with the same headers (the configured ones plus
  :func:`~hfevol.backends.auth.auth_headers`). No huggingface_hub client is involved, so
  no login of the user's reaches a server the user did not choose, and ``HF_HUB_OFFLINE=1``
  (which is about the Hub) does not block the user's own server.
- **Pools.** Per endpoint URL and event loop, as many kept-alive connections as the
  endpoint's in-flight limit, in :class:`Channel` s of at most ``CHANNEL_SIZE``. A
  ``transport_factory`` (for example ``lambda: httpx2.MockTransport(handler)``) replaces
  the network, so a backend's tests need no server.
- **Load balancing.** A request goes to the endpoint with the fewest requests in flight or
  waiting (least outstanding requests), and each endpoint has its own in-flight limit. An
  endpoint whose connections fail is left out while another is healthy; every
  ``PROBE_INTERVAL`` seconds it gets one more try, so a replica that comes back is used again.
- **Retries** follow :class:`~hfevol.backends.retry.RetryPolicy`; each one is logged at
  INFO (logger ``hfevol.backends.transport``) with its cause and wait.
- **Errors** are mapped to :class:`~hfevol.errors.EndpointError` with a ``cause`` in one
  place (:func:`classify`); nothing from httpx leaks out. Unknown exceptions are bugs and propagate.
- **Counters** (:class:`EndpointStats`) feed the summary printed at the end of a run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from ..errors import AuthenticationError, EndpointCause, EndpointError, EndpointUnreachableError
from .auth import auth_headers
from .retry import RetryPolicy, parse_retry_after

T = TypeVar("T")

logger = logging.getLogger(__name__)

TransportFactory = Callable[[], Any]
"""Builds the ``httpx2`` transport of one connection pool (for example an ``httpx2.MockTransport``)."""

CONNECT_TIMEOUT = 10.0
"""Seconds to open a TCP connection (capped by the policy's per-attempt time-out)."""

CHANNEL_SIZE = 16
"""Connections per pool (see :class:`Endpoint`)."""

PROBE_INTERVAL = 5.0
"""Seconds between tries of an endpoint whose connections fail, while others are healthy."""

_AUTH_HINT = (
    "name the variable that holds the server's key with token_env (CLI: --token-env); "
    "HF_TOKEN (or `hf auth login`) is sent by default only to Hugging Face hosts."
)


class EndpointStats:
    """Per-run counters, shared by every event loop of one backend (thread-safe).

    ``successes`` counts requests that got an answer, ``retries`` counts extra attempts by
    the cause of the failure before them, and ``failures`` counts requests that gave up, by
    the cause of their last failure.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.successes = 0
        self.retries: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()

    def record_success(self) -> None:
        with self._lock:
            self.successes += 1

    def record_retry(self, cause: str) -> None:
        with self._lock:
            self.retries[cause] += 1

    def record_failure(self, cause: str) -> None:
        with self._lock:
            self.failures[cause] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"successes": self.successes, "retries": dict(self.retries), "failures": dict(self.failures)}


def classify(exc: BaseException, url: str) -> EndpointError:
    """Map an exception raised while talking to ``url`` to an :class:`EndpointError`.

    An HTTP error with a response (``httpx2.HTTPStatusError``, or huggingface_hub's
    ``HfHubHTTPError``, an ``httpx2.HTTPError`` too) is mapped by its status and body.
    Raises the exception itself when it is not a network, HTTP or parsing failure (a bug).
    """
    import httpx2

    if isinstance(exc, EndpointError):
        return exc
    if isinstance(exc, (httpx2.TimeoutException, asyncio.TimeoutError)):
        return EndpointError(f"{url} did not answer in time", cause="timeout", url=url)
    if isinstance(exc, httpx2.ConnectError):
        return EndpointUnreachableError(f"cannot connect to {url}: {_first_line(exc) or 'connection refused'}", cause="connection", url=url)
    if isinstance(exc, httpx2.TransportError):
        return EndpointError(f"the connection to {url} dropped: {_first_line(exc) or type(exc).__name__}", cause="connection", url=url)
    response = getattr(exc, "response", None) if isinstance(exc, httpx2.HTTPError) else None
    if response is not None:
        return _from_response(response, url)
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        return EndpointError(f"{url} sent a body that is not valid JSON", cause="malformed", url=url)
    raise exc


def _from_response(response: Any, url: str) -> EndpointError:
    status = int(response.status_code)
    message, error_type, estimated = _error_body(response)
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if retry_after is None and estimated is not None:
        retry_after = estimated  # a model that is loading says how long it needs
    text = f"HTTP {status} from {url}" + (f": {message}" if message else "")
    if status in (401, 403):
        return AuthenticationError(text, cause="auth", url=url, status=status, hint=_AUTH_HINT)
    if status == 404:
        return EndpointError(text, cause="not_found", url=url, status=status, hint="check the endpoint URL, the API kind (tgi or openai) and the model name.")
    cause: EndpointCause
    if status == 429:
        cause = "overloaded" if error_type == "overloaded" else "rate_limited"
    elif status == 503 or error_type == "overloaded":
        cause = "overloaded"
    elif status == 408:
        cause = "timeout"
    elif status >= 500 or status == 424:  # 424: TGI's "generation" error
        cause = "server_error"
    else:
        cause = "rejected"  # 400, 413, 422...: the request itself is wrong; sending it again changes nothing
    return EndpointError(text, cause=cause, url=url, status=status, retry_after=retry_after)


def _error_body(response: Any) -> tuple[str | None, str | None, float | None]:
    """(message, error_type, estimated_time) from TGI, OpenAI, vLLM and HF error bodies."""
    try:
        body = response.json()
    except Exception:
        text = (response.text or "").strip()
        return (text[:300] or None), None, None
    if not isinstance(body, dict):
        return str(body)[:300], None, None
    error = body.get("error")
    estimated = body.get("estimated_time")
    estimated = float(estimated) if isinstance(estimated, (int, float)) else None
    if isinstance(error, dict):  # OpenAI: {"error": {"message", "type", "code"}}
        return str(error.get("message"))[:300], error.get("type"), estimated
    if isinstance(error, str):  # TGI: {"error", "error_type"}
        return error[:300], body.get("error_type"), estimated
    message = body.get("message") or body.get("detail")  # vLLM / FastAPI
    return (str(message)[:300] if message else None), body.get("type"), estimated


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


class HttpCall(NamedTuple):
    """One request as a backend builds it: ``method``, ``path`` under the endpoint URL, JSON ``body`` (None: no body)."""

    method: str
    path: str
    body: dict[str, Any] | None = None


USER_AGENT = "hfevol"


class Channel:
    """One connection pool to an endpoint. :meth:`send` is the only place a request leaves hfevol."""

    def __init__(
        self,
        url: str,
        *,
        connections: int,
        policy: RetryPolicy,
        headers: dict[str, str],
        token: str | None,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        import httpx2

        from .. import __version__

        self.url = url
        self.in_flight = 0
        self._request_headers = {"user-agent": f"{USER_AGENT}/{__version__}", **headers, **auth_headers(token)}
        """What every request carries: the configured headers and the token's, nothing else."""
        self.http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(policy.timeout, connect=min(CONNECT_TIMEOUT, policy.timeout)),
            limits=httpx2.Limits(max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=60.0),
            follow_redirects=False,
            verify=_ssl_context(),
            transport=transport_factory() if transport_factory is not None else None,
        )

    def __repr__(self) -> str:  # never shows headers: they may hold the token
        return f"Channel({self.url!r}, in_flight={self.in_flight})"

    async def send(self, call: HttpCall) -> Any:
        """Send ``call`` and return the JSON of a 2xx answer; any other status raises ``httpx2.HTTPStatusError``."""
        response = await self.http.request(call.method, self.url + call.path, json=call.body, headers=self._request_headers)
        response.raise_for_status()
        return json.loads(response.content)


class Endpoint:
    """One endpoint URL inside one event loop: its in-flight limit, its load, its health, its channels.

    The connections are split over channels of at most ``CHANNEL_SIZE``: httpcore scans
    every connection of a pool for each request, so one pool of 128 connections costs
    more client CPU per request than eight pools of 16.
    """

    def __init__(
        self,
        url: str,
        *,
        limit: int,
        policy: RetryPolicy,
        headers: dict[str, str],
        token: str | None,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        self.url = url
        self.limit = limit
        self.slots = asyncio.Semaphore(limit)
        self.load = 0
        """Requests in flight or waiting for a slot here."""
        self.failing_since: float | None = None
        """When connections to it started failing (None: healthy)."""
        self.last_failure = 0.0
        n = -(-limit // CHANNEL_SIZE)
        self.channels = [
            Channel(url, connections=-(-limit // n), policy=policy, headers=headers, token=token, transport_factory=transport_factory) for _ in range(n)
        ]

    def __repr__(self) -> str:
        return f"Endpoint({self.url!r}, load={self.load}, limit={self.limit})"

    def channel(self) -> Channel:
        """The least busy channel; it has a free connection whenever the endpoint has a free slot."""
        return min(self.channels, key=lambda c: c.in_flight)

    async def aclose(self) -> None:
        for c in self.channels:
            await c.http.aclose()


_SSL_CONTEXT: Any = None


def _ssl_context() -> Any:
    """One TLS context per process (the default one), shared by every pool: building one reads the CA bundle (~25 ms)."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        import httpx2

        _SSL_CONTEXT = httpx2.create_ssl_context()
    return _SSL_CONTEXT


class Transport:
    """The endpoints of one backend inside one event loop, and the retry loop around each request.

    ``clock`` (seconds, monotonic), ``sleep`` (a coroutine function) and ``rng`` (the jitter)
    are attributes, so that a test can drive the retry loop on a made-up clock;
    ``transport_factory`` replaces the network (see the module docstring).
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        limits: Sequence[int],
        policy: RetryPolicy,
        headers: dict[str, str],
        token: str | None,
        stats: EndpointStats,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        self.policy = policy
        self.stats = stats
        self.endpoints = [
            Endpoint(u, limit=n, policy=policy, headers=headers, token=token, transport_factory=transport_factory) for u, n in zip(urls, limits, strict=True)
        ]
        self.clock: Callable[[], float] = time.monotonic
        self.sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
        self.rng = random.Random()
        self._turn = 0

    def _pick(self) -> Endpoint:
        now = self.clock()
        usable = [e for e in self.endpoints if e.failing_since is None or now - e.last_failure >= PROBE_INTERVAL]
        n = len(self.endpoints)
        self._turn += 1
        order = {id(e): (i - self._turn) % n for i, e in enumerate(self.endpoints)}
        return min(usable or self.endpoints, key=lambda e: (e.load, order[id(e)]))

    def _check_breaker(self) -> None:
        """Fail at once when every endpoint has failed to connect for longer than one request's budget."""
        now = self.clock()
        budget = self.policy.max_total_seconds
        if all(e.failing_since is not None and now - e.failing_since > budget for e in self.endpoints):
            urls = ", ".join(e.url for e in self.endpoints)
            raise EndpointUnreachableError(
                f"no endpoint has accepted a connection for more than {budget:.0f} s ({urls})",
                cause="connection",
                hint="restart the server and run the same command again (with the request cache, finished rows are not sent again).",
            )

    async def call(self, call: HttpCall, parse: Callable[[Any, str], T], *, endpoint: Endpoint | None = None) -> T:
        """Send ``call`` to an endpoint (``endpoint``, or the least loaded one) and return ``parse(json, url)`` of its answer.

        Every request of the endpoint backends goes through here. A retryable failure (of
        the request, or an :class:`EndpointError` raised by ``parse``) is sent again, maybe to
        another endpoint, as :class:`~hfevol.backends.retry.RetryPolicy` says.

        Raises:
            EndpointError: a failure that is not retryable, or the last one when the retries run out.
        """

        async def send(channel: Channel) -> T:
            return parse(await channel.send(call), channel.url)

        return await self._retrying(send, endpoint, call.path)

    async def _retrying(self, send: Callable[[Channel], Awaitable[T]], endpoint: Endpoint | None, what: str) -> T:
        started = self.clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                self._check_breaker()
            except EndpointError as exc:
                self.stats.record_failure(exc.cause)
                raise
            target = endpoint or self._pick()
            target.load += 1
            try:
                async with target.slots:
                    channel = target.channel()
                    channel.in_flight += 1
                    try:
                        result = await send(channel)
                    finally:
                        channel.in_flight -= 1
            except Exception as exc:  # classified below; unknown exceptions re-raise from classify
                error = classify(exc, target.url)
                if error.cause == "connection":
                    target.last_failure = self.clock()
                    target.failing_since = target.failing_since or target.last_failure
            else:
                target.failing_since = None
                self.stats.record_success()
                return result
            finally:
                target.load -= 1
            if not error.retryable:
                self.stats.record_failure(error.cause)
                raise error
            wait = self.policy.delay(attempt, error.retry_after, self.rng)
            elapsed = self.clock() - started
            if attempt >= self.policy.max_attempts or elapsed + wait > self.policy.max_total_seconds:
                self.stats.record_failure(error.cause)
                raise EndpointError(
                    f"gave up after {attempt} attempt(s) in {elapsed:.1f} s; last error: {error.message}",
                    cause=error.cause,
                    url=error.url,
                    status=error.status,
                ) from error
            self.stats.record_retry(error.cause)
            logger.info(
                "retrying %s in %.2f s (attempt %d of %d failed, cause %s): %s", what, wait, attempt, self.policy.max_attempts, error.cause, error.message
            )
            await self.sleep(wait)

    async def aclose(self) -> None:
        for e in self.endpoints:
            await e.aclose()
