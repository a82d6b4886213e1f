"""The generation-backend interface that every backend implements.

A backend is *configuration plus lazily built runtime state*: its dataclass fields are
plain settings, and whatever is expensive or bound to a process or an event loop (a
model, an HTTP client, a semaphore) is made on first use and left out of pickling. That
keeps ``datasets`` fingerprints stable and lets ``num_proc`` workers rebuild their own.
"""

from __future__ import annotations

import abc
import asyncio
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from ..errors import ConfigError

FinishReason = Literal["stop", "length", "error"]


@dataclass(frozen=True)
class SamplingParams:
    """How to decode. ``temperature=0`` means greedy decoding.

    The defaults are the evolution paper's: temperature 0.7, top_p 0.95, up to 2048 new
    tokens.
    """

    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 2048
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature) and self.temperature >= 0):
            raise ConfigError(f"sampling option temperature={self.temperature!r} must be a number >= 0")
        if not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            raise ConfigError(f"sampling option top_p={self.top_p!r} must be in (0, 1]")
        if not (isinstance(self.max_new_tokens, int) and self.max_new_tokens >= 1):
            raise ConfigError(f"sampling option max_new_tokens={self.max_new_tokens!r} must be an integer >= 1")
        if isinstance(self.stop, str) or not all(isinstance(s, str) and s for s in self.stop):
            raise ConfigError(f"sampling option stop={self.stop!r} must be a list of non-empty strings")
        object.__setattr__(self, "stop", tuple(self.stop))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["stop"] = list(self.stop)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SamplingParams":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown sampling option(s) {unknown}; known: {sorted(known)}")
        settings: dict[str, Any] = {k: (tuple(v) if k == "stop" else v) for k, v in data.items()}
        return cls(**settings)


Route = Literal["chat", "generate", "completions"]
"""An endpoint's generation route: ``chat`` (the server applies the chat template), TGI's ``generate`` or
OpenAI's ``completions`` (both take a prompt rendered here, which needs ``hfevol[tokenizer]``)."""

GREEDY = SamplingParams(temperature=0.0, top_p=1.0)


@dataclass(frozen=True)
class GenerationRequest:
    """One chat prompt to complete."""

    messages: tuple[tuple[str, str], ...]
    """(role, content) pairs, rendered with the model's chat template by the backend."""
    params: SamplingParams = field(default_factory=SamplingParams)
    seed: int | None = None
    """Per-request seed: the same seed, prompt and model give the same text."""
    top1: bool = False
    """Also record, at each generated position, the largest next-token probability (:attr:`GenerationResult.top1`).
    Not part of the request cache's key: an answer with it also answers the request without it."""

    @classmethod
    def chat(
        cls, user: str, *, system: str | None = None, params: SamplingParams | None = None, seed: int | None = None, top1: bool = False
    ) -> "GenerationRequest":
        messages = ((("system", system),) if system else ()) + (("user", user),)
        return cls(messages=messages, params=params or SamplingParams(), seed=seed, top1=top1)

    def as_messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass(frozen=True)
class GenerationResult:
    """What a backend returns for one request. A failed request is a result, not an exception."""

    text: str | None
    finish_reason: FinishReason
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    logprobs: tuple[float, ...] | None = None
    """Log-probability of each generated token, from backends asked for them (``top_n_tokens > 0``)."""
    top_logprobs: tuple[tuple[tuple[str, float], ...], ...] | None = None
    """For each generated token, the ``top_n_tokens`` most likely (token text, log-probability) pairs."""
    top1: tuple[float, ...] | None = None
    """For a request with ``top1=True``: the largest next-token probability at each generated position
    (the end-of-sequence step left out); None when the backend did not return it."""

    @property
    def ok(self) -> bool:
        return self.finish_reason != "error"

    @classmethod
    def failure(cls, message: str) -> "GenerationResult":
        return cls(text=None, finish_reason="error", error=message)


class Backend(abc.ABC):
    """Turns chat requests into completions.

    Subclasses are dataclasses of settings. They implement :meth:`generate` (a batch,
    synchronously) and may override :meth:`agenerate` (one request, asynchronously) when
    they talk to a server.
    """

    kind: str = "backend"

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """A JSON-safe identity: backend kind, model and revision. It goes into metadata and cache keys."""

    def cache_identity(self) -> dict[str, Any]:
        """What makes two backends give the same answer to the same request: the request cache's model key.

        Defaults to :meth:`describe`; endpoint backends leave out their URLs (replicas of one
        model share cached answers) and keep the served model id and revision.
        """
        return self.describe()

    @abc.abstractmethod
    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Complete a batch of requests, one result per request, in order."""

    async def agenerate(self, request: GenerationRequest) -> GenerationResult:
        """Complete one request without blocking the event loop."""
        return (await asyncio.to_thread(self.generate, [request]))[0]

    # Runtime state (models, clients) lives in attributes whose names start with "_";
    # they are never pickled, so a copy rebuilds them on first use.
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def top1_from_logprobs(logprobs: Sequence[float | None], top: Sequence[Sequence[tuple[str, float]]] | None = None) -> tuple[float, ...]:
    """The largest probability at each position, from a server's per-token log-probabilities.

    At position ``t`` it is ``exp`` of the largest of the emitted token's log-probability
    (under greedy decoding that token is the top one) and the ``top`` alternatives' (under
    sampling the top one is among them; the largest is taken rather than trusting the order).
    A position with no value at all is left out.
    """
    out = []
    for t, value in enumerate(logprobs):
        candidates = [value] if value is not None else []
        if top is not None and t < len(top):
            candidates.extend(lp for _, lp in top[t] if lp is not None)
        if candidates:
            out.append(math.exp(max(float(c) for c in candidates)))
    return tuple(out)


def innermost(backend: Backend) -> Backend:
    """The backend that generates, seen through every wrapper around it (the request cache, the token meter)."""
    while isinstance(getattr(backend, "backend", None), Backend):
        backend = backend.backend  # type: ignore[attr-defined]
    return backend
