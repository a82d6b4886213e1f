"""What a run costs, before and during it: token counts, a token budget, and the dry run.

:class:`MeteredBackend` wraps a stage's backend (outside the request cache) and counts the
prompt and completion tokens of every answer, as the server reports them (``usage`` /
``details``; an answer without them is counted as ``unknown``). With ``budget_tokens`` it
stops sending once that many tokens are used: every later request that the request cache
cannot answer comes back *not sent* (status ``not_sent``, with the reason), is not cached,
and is sent by the same command run again with a larger budget. The budget counts answers
from the cache too, so it bounds the tokens of the whole output, and a resumed run spends
only the difference. Requests already in flight when the budget is reached still finish, so
a run passes its budget by at most ``max_in_flight`` answers per endpoint.

:func:`dry_run` renders every prompt of a stage and counts them without sending anything.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .backends.base import Backend, GenerationRequest, GenerationResult
from .errors import ConfigError
from .status import NOT_SENT_PREFIX


@dataclass
class MeteredBackend(Backend):
    """Count the tokens of ``backend``'s answers; with ``budget_tokens``, send nothing once that many are used."""

    backend: Backend
    budget_tokens: int | None = None
    in_flight: int | None = None
    """With a budget: requests past the budget check and not yet answered (the endpoint's whole in-flight limit), so a
    run passes its budget by at most this many answers."""
    kind = "metered"

    def __post_init__(self) -> None:
        if self.budget_tokens is not None and (not isinstance(self.budget_tokens, int) or self.budget_tokens < 1):
            raise ConfigError(f"--budget-tokens {self.budget_tokens!r} must be an integer >= 1")

    def _state(self) -> dict[str, int]:
        if getattr(self, "_counts", None) is None:
            self._counts = {"requests": 0, "prompt": 0, "completion": 0, "unknown": 0, "not_sent": 0}
        return self._counts

    @property
    def used(self) -> int:
        """Prompt plus completion tokens of every answer so far."""
        s = self._state()
        return s["prompt"] + s["completion"]

    @property
    def hits(self) -> int | None:
        """The request cache's hits, when the wrapped backend has a cache."""
        return getattr(self.backend, "hits", None)

    def tokens(self) -> dict[str, int]:
        """The counts for the summary and the run record: requests, prompt, completion, unknown, not_sent (and budget)."""
        out = dict(self._state())
        return {**out, "budget": self.budget_tokens} if self.budget_tokens is not None else out

    def describe(self) -> dict[str, Any]:
        return self.backend.describe()

    def cache_identity(self) -> dict[str, Any]:
        return self.backend.cache_identity()

    def _spent(self) -> bool:
        return self.budget_tokens is not None and self.used >= self.budget_tokens

    def _from_cache(self, request: GenerationRequest) -> GenerationResult | None:
        from .cache import CachedBackend, request_key

        inner = self.backend
        if not isinstance(inner, CachedBackend):
            return None
        hit = inner.cache.get(request_key(inner._identity(), request))
        if hit is not None:
            inner._hits += 1
        return hit

    def _not_sent(self) -> GenerationResult:
        self._state()["not_sent"] += 1
        return GenerationResult.failure(f"{NOT_SENT_PREFIX}the token budget of {self.budget_tokens} was used ({self.used} tokens); "
                                        "run the same command with a larger --budget-tokens to send it")  # fmt: skip

    def _count(self, result: GenerationResult) -> GenerationResult:
        s = self._state()
        if result.ok:
            s["requests"] += 1
            if result.prompt_tokens is None or result.completion_tokens is None:
                s["unknown"] += 1
            s["prompt"] += result.prompt_tokens or 0
            s["completion"] += result.completion_tokens or 0
        return result

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if not self._spent():
            return [self._count(r) for r in self.backend.generate(list(requests))]
        return [self._count(hit) if (hit := self._from_cache(r)) is not None else self._not_sent() for r in requests]

    async def agenerate(self, request: GenerationRequest) -> GenerationResult:
        if self.budget_tokens is None:
            return self._count(await self.backend.agenerate(request))
        hit = self._from_cache(request)  # answers in the cache are read whatever the budget
        if hit is not None:
            return self._count(hit)
        async with self._gate():  # the budget is checked when the request is about to be sent, not when it is queued
            if self._spent():
                return self._not_sent()
            return self._count(await self.backend.agenerate(request))

    def _gate(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if getattr(self, "_gate_loop", None) is not loop:
            self._gate_loop, self._gate_value = loop, asyncio.Semaphore(self.in_flight or 1 << 30)
        return self._gate_value


def add_budget_options(parser: argparse.ArgumentParser) -> None:
    """``--dry-run``, ``--price-per-mtok IN,OUT`` and ``--budget-tokens N``."""
    group = parser.add_argument_group("cost")
    group.add_argument("--dry-run", action="store_true", help="render every prompt and print rows, prompt tokens and the most completion tokens; send nothing")
    group.add_argument("--price-per-mtok", default=None, metavar="IN,OUT", help="with --dry-run: prices per million prompt and completion tokens, for the cost")
    group.add_argument("--budget-tokens", type=int, default=None, metavar="N",
                       help="stop sending once N tokens (prompt + completion, cached answers included) are used; the rest is not_sent")  # fmt: skip


def prices_from(text: str | None) -> tuple[float, float] | None:
    """``"IN,OUT"`` as two prices per million tokens."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        prices = tuple(float(p) for p in parts)
    except ValueError:
        prices = ()
    if len(prices) != 2 or not all(math.isfinite(p) and p >= 0 for p in prices):
        raise ConfigError(f"--price-per-mtok {text!r} must be two prices, IN,OUT", hint="for example --price-per-mtok 0.15,0.60 (dollars per million tokens).")
    return prices[0], prices[1]


def metered(backend: Backend, args: argparse.Namespace) -> MeteredBackend:
    """``backend`` counted, with the budget of ``--budget-tokens``."""
    in_flight = getattr(args, "max_in_flight", None)
    urls = getattr(args, "endpoint", None)
    budget = getattr(args, "budget_tokens", None)
    return MeteredBackend(backend, budget, in_flight * len(urls) if budget and in_flight and urls else None)


class NoSend(Backend):
    """The backend of a dry run: building requests needs none, and sending one is a bug."""

    kind = "dry-run"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": None, "revision": None}

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        raise AssertionError("a dry run sends nothing")


def token_counter(args: argparse.Namespace) -> tuple[Callable[[GenerationRequest], int], str]:
    """A prompt-token counter and its name: the ``--tokenizer`` (or the local ``--model``) with its chat template,
    else an estimate of four characters a token (the server's own tokenizer is not asked: a dry run sends nothing)."""
    name = getattr(args, "tokenizer", None) or (None if getattr(args, "endpoint", None) else getattr(args, "model", None))
    if name:
        from .extras import available

        if available("tokenizer"):
            from .models.loading import load_tokenizer

            tok = load_tokenizer(name)
            if getattr(tok, "chat_template", None):
                return (lambda r: len(tok.apply_chat_template(r.as_messages(), tokenize=True, add_generation_prompt=True))), f"tokenizer {name}"
            return (lambda r: sum(len(tok.encode(c)) for _, c in r.messages)), f"tokenizer {name}, without a chat template"
    return (lambda r: math.ceil(sum(len(c) for _, c in r.messages) / 4)), "estimated at 4 characters a token"


@dataclass(frozen=True)
class DryRun:
    """What a stage would send: ``requests`` rows to send in its first pass, their prompt tokens, and the bounds over every pass."""

    rows: int
    requests: int
    prompt_tokens: int
    max_requests: int
    max_prompt_tokens: int
    max_completion_tokens: int
    counter: str

    def cost(self, prices: tuple[float, float]) -> float:
        """The most the run costs at ``prices`` (per million prompt and completion tokens)."""
        return (self.max_prompt_tokens * prices[0] + self.max_completion_tokens * prices[1]) / 1e6

    def print(self, stage: str, prices: tuple[float, float] | None, passes: int = 1) -> None:
        print(f"\n== Dry run of {stage}: nothing sent")
        print(f"   rows                {self.rows:>12}")
        print(f"   requests            {self.requests:>12}" + (f"   (at most {self.max_requests} over {passes} rounds)" if passes > 1 else ""))
        print(
            f"   prompt tokens       {self.prompt_tokens:>12}   ({self.counter})"
            + (f"; at most {self.max_prompt_tokens} over every round" if passes > 1 else "")
        )
        print(f"   completion tokens ≤ {self.max_completion_tokens:>12}   (max_new_tokens per request)")
        if prices is not None:
            print(f"   cost              ≤ {self.cost(prices):>12.4f}   (at {prices[0]:g} in, {prices[1]:g} out per million tokens)")


def dry_run(transform: Any, ds: Any, *, index_offset: int = 0, counter: tuple[Callable[[GenerationRequest], int], str], passes: int = 1) -> DryRun:
    """Render every request ``transform`` (a :class:`~hfevol.transform.GenerationTransform`) builds for ``ds``, without sending one.

    ``passes`` > 1 (evolution rounds) bounds the later passes: each row again, with a prompt
    at most ``max_new_tokens`` longer (the evolved instruction replaces the seed's).
    """
    count, name = counter
    requests = prompt = 0
    max_new = 0
    position = index_offset
    for batch in ds.iter(batch_size=1000):
        n = len(next(iter(batch.values()))) if batch else 0
        prepared = transform.prepare(batch, list(range(position, position + n)))
        position += n
        for request in prepared.requests:
            requests += 1
            prompt += count(request)
            max_new = request.params.max_new_tokens
    later = (passes - 1) * (prompt + requests * max_new)
    return DryRun(rows=len(ds), requests=requests, prompt_tokens=prompt, max_requests=requests * passes,
                  max_prompt_tokens=prompt + later, max_completion_tokens=requests * passes * max_new, counter=name)  # fmt: skip


def print_tokens(backend: Backend) -> None:
    """The token lines of a stage's summary (nothing for a backend without a meter)."""
    if not isinstance(backend, MeteredBackend):
        return
    t = backend.tokens()
    unknown = f", {t['unknown']} answer(s) without usage" if t["unknown"] else ""
    print(f"\n   tokens: {t['prompt']} prompt + {t['completion']} completion over {t['requests']} answer(s){unknown}")
    if t["not_sent"]:
        print(f"   {t['not_sent']} request(s) not sent: the budget of {t['budget']} tokens was used; "
              "run the same command with a larger --budget-tokens to send them (answers so far come from the cache)")  # fmt: skip


def record_tokens(record: Any, backend: Backend) -> Any:
    """``record`` with the counts of a metered backend under ``tokens.<command>`` (the last command's name;
    the entries of earlier commands of the chain are kept). Unchanged for a backend without a meter."""
    if not isinstance(backend, MeteredBackend):
        return record
    command = record.last_command.name if record.last_command else "run"
    earlier = record.extras.get("tokens") if isinstance(record.extras.get("tokens"), dict) else {}
    return record.with_extras(tokens={**earlier, command: backend.tokens()})
