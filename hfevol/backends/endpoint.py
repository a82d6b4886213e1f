"""What every inference-server backend shares: settings, start-up check, per-loop transports, sync and async paths.

A subclass says what to send and how to read the answer (:meth:`EndpointBackend.build`,
:meth:`EndpointBackend.parse`, :meth:`EndpointBackend._probe`); the
:class:`~hfevol.backends.transport.Transport` sends. Which token goes where is
:mod:`hfevol.backends.auth`'s decision.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import dataclasses
import logging
import re
import threading
import weakref
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from ..errors import ConfigError, EndpointError, EndpointUnreachableError
from ..extras import require
from .auth import CREDENTIAL_HEADERS, choose_token
from .base import Backend, GenerationRequest, GenerationResult, Route
from .retry import RetryPolicy
from .transport import Endpoint, EndpointStats, HttpCall, Transport, TransportFactory

T = TypeVar("T")

logger = logging.getLogger(__name__)

DEFAULT_MAX_IN_FLIGHT = 128
"""Requests in flight per endpoint: TGI's default ``max_concurrent_requests``."""


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, also when this thread already runs a loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def _normalise_url(url: Any) -> str:
    """The API root of an endpoint URL; every message about a bad one shows it without its secrets (:func:`~hfevol.redact.redact_url`)."""
    from ..redact import redact_url

    if not isinstance(url, str) or not url.strip():
        shown = repr(redact_url(url)) if isinstance(url, str) else f"of type {type(url).__name__}"
        raise ConfigError(f"endpoint URL {shown} must be a non-empty string", hint="for example http://127.0.0.1:8080")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018  a port that is not a number raises here
    except ValueError:
        raise ConfigError(f"endpoint URL {redact_url(url)!r} is not a valid URL", hint="for example http://127.0.0.1:8080") from None
    if parts.username or parts.password:
        raise ConfigError(
            f"endpoint URL {redact_url(url)!r} must not hold credentials (user:password@host)",
            hint="put the key in an environment variable and name it with token_env (the CLI: --token-env).",
        )
    if parts.query or parts.fragment:
        raise ConfigError(
            f"endpoint URL {redact_url(url)!r} must not have a query or fragment",
            hint="give the server's root URL; a key goes in an environment variable named with token_env (the CLI: --token-env).",
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"endpoint URL {redact_url(url)!r} must start with http:// or https:// and name a host", hint="for example http://127.0.0.1:8080")
    path = parts.path.rstrip("/")
    path = path[: -len("/v1")] if path.endswith("/v1") else path  # the API root: routes are appended to it
    return f"{parts.scheme}://{parts.netloc}{path}"


@dataclass
class EndpointBackend(Backend):
    """Base of the backends that call an inference server over HTTP.

    Args:
        urls: one endpoint URL or several replicas of the same model; requests go to the
            replica with the fewest in flight. A trailing ``/v1`` is accepted.
        route: which API route generates (see the subclass).
        max_in_flight: requests in flight per endpoint (default 128, TGI's default
            ``max_concurrent_requests``; lowered to what TGI's ``/info`` announces).
        retry: attempts, time budget and per-attempt time-out (:class:`RetryPolicy`).
        headers: extra HTTP headers. Credentials do not belong here (:data:`CREDENTIAL_HEADERS` are
            refused); the values are sent but never recorded, described or shown.
        token_env: name of the environment variable that holds the server's key. By
            default the Hugging Face token (``HF_TOKEN`` or ``hf auth login``) is sent, but
            only when every URL is a Hugging Face host (Inference Endpoints, Spaces, the
            Hub or ``HF_ENDPOINT``'s host): a self-hosted server gets no token unless
            ``token_env`` names one (``token_env="HF_TOKEN"`` sends the Hugging Face token
            there). The token is never logged, described or cached.
        model: model name sent in the request body; default: the id the server reports.
        tokenizer: for routes that render the chat template on the client
            (``generate``, ``completions``): ``"embedded"``, a local folder or a cached
            Hub id; default: the served model id.
        top_n_tokens: when > 0, ask for the log-probability of each generated token and
            the top ``n`` alternatives (``GenerationResult.logprobs``/``top_logprobs``).
        transport_factory: builds the ``httpx2`` transport of each connection pool instead
            of real connections, for example ``lambda: httpx2.MockTransport(handler)``:
            tests of a backend without a server. Not a setting: never pickled, described
            or part of the cache key.

    The start-up check (:meth:`check`) runs before the first request: it reads the
    served model id and revision (they go into :meth:`describe` and the cache key) and
    raises :class:`~hfevol.errors.EndpointUnreachableError` or
    :class:`~hfevol.errors.AuthenticationError` before any work starts.

    A request whose retries run out returns a failed :class:`GenerationResult` (the row
    gets an error status and the job goes on). Authentication failures and unknown
    routes would fail every row alike: they raise.
    """

    urls: str | Sequence[str] = ()
    route: Route = "chat"
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    token_env: str | None = None
    model: str | None = None
    tokenizer: str | None = None
    top_n_tokens: int = 0
    transport_factory: TransportFactory | None = field(default=None, repr=False, compare=False)

    ROUTES: ClassVar[tuple[Route, ...]] = ("chat",)
    CLIENT_TEMPLATE_ROUTES: ClassVar[tuple[Route, ...]] = ()
    """Routes that take a raw prompt, so the chat template is rendered here."""
    SCORING: ClassVar[PromptScoring]
    """How this kind of server gives prompt log-probabilities (endpoint scoring)."""

    def __post_init__(self) -> None:
        raw = [self.urls] if isinstance(self.urls, str) else list(self.urls)
        if not raw:
            raise ConfigError(f"{type(self).__name__} needs at least one endpoint URL", hint="for example urls='http://127.0.0.1:8080'")
        self.urls = tuple(_normalise_url(u) for u in raw)
        if len(set(self.urls)) != len(self.urls):
            raise ConfigError(f"endpoint URLs are listed twice: {list(self.urls)}")
        if self.route not in self.ROUTES:
            raise ConfigError(f"route={self.route!r} is not one of {list(self.ROUTES)} for {self.kind}")
        if self.route in self.CLIENT_TEMPLATE_ROUTES:
            require("tokenizer", f"route={self.route!r} (the chat template is rendered here; route='chat' needs nothing)", "transformers")
        if not (isinstance(self.max_in_flight, int) and self.max_in_flight >= 1):
            raise ConfigError(f"max_in_flight={self.max_in_flight!r} must be an integer >= 1")
        if not isinstance(self.retry, RetryPolicy):
            raise ConfigError(f"retry must be a RetryPolicy, got {type(self.retry).__name__}")
        self.headers = dict(self.headers or {})
        for name, value in self.headers.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise ConfigError("headers must map strings to strings")
            if name.strip().lower() in CREDENTIAL_HEADERS:
                raise ConfigError(
                    f"header {name!r} would carry a credential on the command line or in the configuration",
                    hint="put the key in an environment variable and name it with token_env (the CLI: --token-env).",
                )
        if self.token_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(self.token_env)):
            raise ConfigError(f"token_env={self.token_env!r} must be the name of an environment variable")
        if not (isinstance(self.top_n_tokens, int) and self.top_n_tokens >= 0):
            raise ConfigError(f"top_n_tokens={self.top_n_tokens!r} must be an integer >= 0")

    # -- hooks for subclasses ----------------------------------------------------------

    @abc.abstractmethod
    async def _probe(self, transport: Transport, endpoint: Endpoint) -> dict[str, Any]:
        """Ask one endpoint (through ``transport.call(..., endpoint=endpoint)``) what it serves: ``{"model", "revision", "max_concurrent_requests", "server"}``."""

    @abc.abstractmethod
    def build(self, request: GenerationRequest) -> HttpCall:
        """The HTTP request (method, path, JSON body) that generates ``request`` on this route; no I/O.

        Routes that render the chat template here need the start-up check to have run
        (the template and the served model id come from it).
        """

    @abc.abstractmethod
    def parse(self, body: Any, request: GenerationRequest, *, url: str) -> GenerationResult:
        """The result in the JSON ``body`` the server at ``url`` answered to :meth:`build`'s request; no I/O.

        Raises:
            EndpointError: the body is not this route's answer (cause ``malformed``).
        """

    def _identity_extras(self) -> dict[str, Any]:
        """Settings of the subclass that change what the server answers (part of the cache key)."""
        return {}

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("transport_factory", None)  # a test's stand-in for the network, not a setting
        return state

    # -- runtime state (never pickled) -------------------------------------------------

    def _runtime(self) -> None:
        if getattr(self, "_lock", None) is None:
            self._lock = threading.Lock()
            self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Transport] = weakref.WeakKeyDictionary()
            self._check_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
            self._served: dict[str, Any] | None = None
            self._stats = EndpointStats()
            self._template: Any = None

    @property
    def stats(self) -> EndpointStats:
        """Successes, retries and failures of this backend in this process."""
        self._runtime()
        return self._stats

    def _token(self) -> str | None:
        return choose_token(self.urls, self.token_env)

    def _new_transport(self, limits: Sequence[int], policy: RetryPolicy, stats: EndpointStats) -> Transport:
        return Transport(
            self.urls, limits=limits, policy=policy, headers=dict(self.headers), token=self._token(), stats=stats, transport_factory=self.transport_factory
        )

    # -- start-up check ----------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        """Probe every endpoint once (cached): served model id, revision and limits.

        Raises:
            EndpointUnreachableError: an endpoint cannot be reached.
            AuthenticationError: an endpoint refuses the token.
            EndpointError: an endpoint does not speak this API.
            ConfigError: the endpoints serve different models, or the tokenizer needed by
                the route cannot be loaded.
        """
        self._runtime()
        if self._served is None:
            run_sync(self._acheck)
        assert self._served is not None
        return self._served

    async def _acheck(self) -> None:
        # A few quick attempts: an endpoint that refuses connections at start is a configuration problem.
        policy = dataclasses.replace(self.retry, max_attempts=min(self.retry.max_attempts, 3))
        transport = self._new_transport([1] * len(self.urls), policy, EndpointStats())  # probes are not the run's requests
        try:
            found = [await self._probe(transport, e) for e in transport.endpoints]
        except EndpointError as exc:
            if exc.cause not in ("connection", "timeout"):
                raise
            raise EndpointUnreachableError(
                f"endpoint check failed before any work started: {exc.message}",
                cause=exc.cause,
                url=exc.url,
                hint="is the server running and listening on that host and port? Check the URL (and --endpoint-api).",
            ) from exc
        finally:
            await transport.aclose()
        models = {f["model"] for f in found}
        if len(models) > 1:
            raise ConfigError(
                f"the endpoints serve different models: {dict(zip(self.urls, (f['model'] for f in found)))}", hint="list replicas of one model only."
            )
        limits = []
        for f in found:
            server_limit = f.get("max_concurrent_requests")
            limits.append(min(self.max_in_flight, server_limit) if isinstance(server_limit, int) and server_limit > 0 else self.max_in_flight)
        served = {"model": found[0]["model"], "revision": found[0].get("revision"), "limits": limits, "server": found[0].get("server", {})}
        for url, limit in zip(self.urls, limits):
            logger.info("%s serves %s (revision %s); up to %d requests in flight", url, served["model"], served["revision"] or "-", limit)
        if self.route in self.CLIENT_TEMPLATE_ROUTES:
            from ..models.loading import load_template_tokenizer

            self._template = load_template_tokenizer(
                self.tokenizer or served["model"],
                purpose=f"route {self.route!r}",
                hint="pass tokenizer='embedded', a local model folder or a Hub id in the local cache; or use route='chat', where the server applies the template.",
            )
        with self._lock:
            self._served = served

    # -- identity ----------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Backend kind, served model id and revision, route, URLs and limits (runs the start-up check once)."""
        served = self.check()
        return {
            "backend": self.kind,
            "route": self.route,
            "model": served["model"],
            "revision": served["revision"],
            "urls": list(self.urls),
            "max_in_flight": served["limits"],
            "retry": self.retry.to_dict(),
            "server": served["server"],
            **self._identity_extras(),
            **({"top_n_tokens": self.top_n_tokens} if self.top_n_tokens else {}),
            **({"tokenizer": self.tokenizer} if self.route in self.CLIENT_TEMPLATE_ROUTES else {}),
        }

    def cache_identity(self) -> dict[str, Any]:
        """The served model and every setting that changes its answers; not the URLs (replicas share answers)."""
        desc = self.describe()
        keep = ("backend", "route", "model", "revision", "top_n_tokens", "tokenizer", *self._identity_extras())
        return {k: desc[k] for k in keep if k in desc} | {"model_name": self.model or desc["model"]}

    # -- generation --------------------------------------------------------------------

    async def _transport(self) -> Transport:
        self._runtime()
        loop = asyncio.get_running_loop()
        transport = self._loops.get(loop)
        if transport is not None:
            return transport
        lock = self._check_locks.setdefault(loop, asyncio.Lock())
        async with lock:
            if self._served is None:
                await self._acheck()
            transport = self._loops.get(loop)
            if transport is None:
                assert self._served is not None
                transport = self._new_transport(self._served["limits"], self.retry, self._stats)
                self._loops[loop] = transport
        return transport

    async def agenerate(self, request: GenerationRequest) -> GenerationResult:
        transport = await self._transport()
        try:
            return await transport.call(self.build(request), lambda body, url: self.parse(body, request, url=url))
        except EndpointError as exc:
            if exc.fatal:
                raise
            return GenerationResult.failure(exc.message)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Run the requests concurrently on a private event loop (the async path does the work)."""

        async def run_all() -> list[GenerationResult]:
            return list(await asyncio.gather(*(self.agenerate(r) for r in requests)))

        return self.run(run_all) if requests else []

    def run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run a coroutine of the async path from sync code on a private event loop, then close that loop's connections."""

        async def wrapped() -> T:
            self._runtime()
            try:
                return await make()
            finally:
                transport = self._loops.pop(asyncio.get_running_loop(), None)
                if transport is not None:
                    await transport.aclose()

        return run_sync(wrapped)

    # -- helpers for subclasses --------------------------------------------------------

    def _model_name(self) -> str:
        assert self._served is not None
        return self.model or self._served["model"]

    def _render(self, request: GenerationRequest) -> str:
        """The prompt of a raw-prompt route: the request's messages through the chat template."""
        return self._template.apply_chat_template(request.as_messages(), tokenize=False, add_generation_prompt=True)

    # -- what endpoint scoring needs to know about the server --------------------------

    @property
    def sends_ids(self) -> bool:
        """Whether prompt log-probs are asked for token ids (vLLM) rather than for a text (TGI)."""
        return self.SCORING.sends_ids

    def prompt_limit(self) -> tuple[int | None, str]:
        """The most tokens a scored prompt may have (None: the server does not say), and the rule that sets it.

        Runs the start-up check once.
        """
        rule = self.SCORING.limit_field + (" less the generated token" if self.SCORING.reserved else "")
        limit = self.check().get("server", {}).get(self.SCORING.limit_field)
        return (limit - self.SCORING.reserved if isinstance(limit, int) else None), rule


@dataclass(frozen=True)
class PromptScoring:
    """How a kind of server gives prompt log-probabilities, for endpoint scoring (:mod:`hfevol.scoring.endpoint`)."""

    server: str
    """The server's name in messages (``"TGI"``, ``"vLLM"``)."""
    label: str
    """Where the log-probs come from, named in the scores' metadata (``logprobs``)."""
    limit_field: str
    """The field of the start-up check's ``server`` description that bounds a prompt."""
    reserved: int
    """Tokens of that limit that the one generated token takes."""
    sends_ids: bool
    """Prompts go out as ``/tokenize`` ids (so they can be cut to ``max_length``, and chat mode works), not as texts."""
    tokenize_refusals: tuple[str, ...]
    """Causes of a failed ``/tokenize`` that mean "this server has no such route"."""
    hint: str
    """What to change when the server cannot score."""
