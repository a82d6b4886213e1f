"""All network I/O of the endpoint backends: connection pools, load balancing, retries, error mapping, counters.

Backends (``tgi.py``, ``openai.py``) only build requests and parse responses. They hand
the transport a coroutine function ``send(channel)`` and the transport decides where it
runs, how often, and what a failure means:

- **Pools.** Per endpoint URL and event loop, as many kept-alive connections as the
  endpoint's in-flight limit, in :class:`Channel` s of at most ``CHANNEL_SIZE``
  (``httpx2.AsyncClient`` plus a ``huggingface_hub.AsyncInferenceClient`` that uses it). hfevol gives the client its own connection pool (instead of huggingface_hub's
  default factory) for two reasons: the pool must hold as many kept-alive connections as
  there are requests in flight, and ``HF_HUB_OFFLINE=1`` (which blocks every request of
  the default factory) is about the Hub, not about the user's own server.
- **Load balancing.** A request goes to the endpoint with the fewest requests in flight or
  waiting (least outstanding requests), and each endpoint has its own in-flight limit. An
  endpoint whose connections fail is left out while another is healthy; every
  ``PROBE_INTERVAL`` seconds it gets one more try, so a replica that comes back is used again.
- **Retries** follow :class:`~hfevol.backends.retry.RetryPolicy`.
- **Errors** are mapped to :class:`~hfevol.errors.EndpointError` with a ``cause``; nothing
  from httpx or huggingface_hub leaks out. Unknown exceptions are bugs and propagate.
- **Counters** (:class:`EndpointStats`) feed the summary printed at the end of a run.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ..errors import AuthenticationError, EndpointError, EndpointUnreachableError
from .retry import RetryPolicy, parse_retry_after

T = TypeVar("T")

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

    Raises the exception itself when it is not a network, HTTP or parsing failure (a bug).
    """
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError, TextGenerationError

    if isinstance(exc, EndpointError):
        return exc
    if isinstance(exc, TextGenerationError) and isinstance(exc.__cause__, HfHubHTTPError):
        exc = exc.__cause__  # huggingface_hub re-raises TGI's errors; the HTTP response is on the cause
    if isinstance(exc, (InferenceTimeoutError, httpx2.TimeoutException, asyncio.TimeoutError)):
        return EndpointError(f"{url} did not answer in time", cause="timeout", url=url)
    if isinstance(exc, httpx2.ConnectError):
        return EndpointUnreachableError(f"cannot connect to {url}: {_first_line(exc) or 'connection refused'}", cause="connection", url=url)
    if isinstance(exc, httpx2.TransportError):
        return EndpointError(f"the connection to {url} dropped: {_first_line(exc) or type(exc).__name__}", cause="connection", url=url)
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return _from_response(exc.response, url)
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


def auth_headers(token: str | None) -> dict[str, str]:
    """The HTTP headers that carry ``token`` (none without one): the one place a request gets credentials.

    Every request to an endpoint, through ``huggingface_hub`` or straight through httpx,
    carries these headers and no other credential; which token (if any) goes where is the
    backend's decision (:meth:`~hfevol.backends.endpoint.EndpointBackend._token`).
    """
    return {"authorization": f"Bearer {token}"} if token else {}


class Channel:
    """One connection pool to an endpoint, and the clients that use it. Backends send through a channel."""

    def __init__(self, url: str, *, connections: int, policy: RetryPolicy, headers: dict[str, str], token: str | None) -> None:
        import httpx2

        self.url = url
        self.in_flight = 0
        self._request_headers = {**headers, **auth_headers(token)}
        """What every request carries: the configured headers and the token's, nothing from huggingface_hub's login."""
        self._timeout = policy.timeout
        self.http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(policy.timeout, connect=min(CONNECT_TIMEOUT, policy.timeout)),
            limits=httpx2.Limits(max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=60.0),
            follow_redirects=False,
            verify=_ssl_context(),
        )
        self._hf: Any = None

    def __repr__(self) -> str:  # never shows headers: they may hold the token
        return f"Channel({self.url!r}, in_flight={self.in_flight})"

    @property
    def hf(self) -> Any:
        """A ``huggingface_hub.AsyncInferenceClient`` for this URL that uses this channel's pool and headers."""
        if self._hf is None:
            self._hf = _client_class()(self.http, self._request_headers, base_url=self.url, timeout=self._timeout)
        return self._hf

    async def get_json(self, path: str) -> Any:
        return _json_of(await self.http.get(self.url + path, headers=self._request_headers))

    async def post_json(self, path: str, payload: dict[str, Any]) -> Any:
        return _json_of(await self.http.post(self.url + path, json=payload, headers=self._request_headers))


class Endpoint:
    """One endpoint URL inside one event loop: its in-flight limit, its load, its health, its channels.

    The connections are split over channels of at most ``CHANNEL_SIZE``: httpcore scans
    every connection of a pool for each request, so one pool of 128 connections costs
    more client CPU per request than eight pools of 16.
    """

    def __init__(self, url: str, *, limit: int, policy: RetryPolicy, headers: dict[str, str], token: str | None) -> None:
        self.url = url
        self.limit = limit
        self.slots = asyncio.Semaphore(limit)
        self.load = 0
        """Requests in flight or waiting for a slot here."""
        self.failing_since: float | None = None
        """When connections to it started failing (None: healthy)."""
        self.last_failure = 0.0
        n = -(-limit // CHANNEL_SIZE)
        self.channels = [Channel(url, connections=-(-limit // n), policy=policy, headers=headers, token=token) for _ in range(n)]

    def __repr__(self) -> str:
        return f"Endpoint({self.url!r}, load={self.load}, limit={self.limit})"

    def channel(self) -> Channel:
        """The least busy channel; it has a free connection whenever the endpoint has a free slot."""
        return min(self.channels, key=lambda c: c.in_flight)

    async def aclose(self) -> None:
        for c in self.channels:
            await c.http.aclose()


def _json_of(response: Any) -> Any:
    from huggingface_hub.utils import hf_raise_for_status

    hf_raise_for_status(response)
    return json.loads(response.content)


_SSL_CONTEXT: Any = None


def _ssl_context() -> Any:
    """One TLS context per process (the default one), shared by every pool: building one reads the CA bundle (~25 ms)."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        import httpx2

        _SSL_CONTEXT = httpx2.create_ssl_context()
    return _SSL_CONTEXT


_CLIENT_CLASS: type | None = None


def _client_class() -> type:
    """``AsyncInferenceClient`` that takes its httpx pool and its headers from hfevol (built once, on first use)."""
    global _CLIENT_CLASS
    if _CLIENT_CLASS is None:
        from huggingface_hub import AsyncInferenceClient

        class PooledInferenceClient(AsyncInferenceClient):
            def __init__(self, http: Any, headers: dict[str, str], **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self._hfevol_http = http
                self._hfevol_headers = dict(headers)

            async def _get_async_client(self) -> Any:  # the one hook huggingface_hub uses to get its pool
                return self._hfevol_http

            async def _inner_post(self, request_parameters: Any, *, stream: bool = False) -> Any:
                # huggingface_hub adds the Hugging Face token (HF_TOKEN or the stored login) to
                # every request whatever ``token`` says (None means "the stored one"): drop its
                # credentials and send the channel's headers instead.
                kept = {k: v for k, v in request_parameters.headers.items() if k.lower() != "authorization"}
                request_parameters.headers = {**kept, **self._hfevol_headers}
                return await super()._inner_post(request_parameters, stream=stream)

        _CLIENT_CLASS = PooledInferenceClient
    return _CLIENT_CLASS


class Transport:
    """The endpoints of one backend inside one event loop, and the retry loop around each request.

    ``clock`` (seconds, monotonic), ``sleep`` (a coroutine function) and ``rng`` (the jitter)
    are attributes, so that a test can drive the retry loop on a made-up clock.
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
    ) -> None:
        self.policy = policy
        self.stats = stats
        self.endpoints = [Endpoint(u, limit=n, policy=policy, headers=headers, token=token) for u, n in zip(urls, limits, strict=True)]
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

    async def call(self, send: Callable[[Channel], Awaitable[T]], *, endpoint: Endpoint | None = None) -> T:
        """Run ``send`` on an endpoint, retrying retryable failures; raise :class:`EndpointError` when it gives up."""
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
            await self.sleep(wait)

    async def aclose(self) -> None:
        for e in self.endpoints:
            await e.aclose()
