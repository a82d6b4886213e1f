"""What a run costs, before and during it: token counts, a token budget, and the dry run.

:class:`MeteredBackend` wraps a stage's backend (outside the request cache) and counts the
prompt and completion tokens of every answer, as the server reports them (``usage`` /
``details``). A count the server did not give is made with a tokenizer when one is at hand
(``--tokenizer``, the local model's, or the endpoint's chat-template tokenizer: never a
model's weights), loaded on the first answer that needs it; the tokens entry says which
counts came from the server and which from the tokenizer. An answer still without counts is
``unknown``. With ``budget_tokens`` it
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
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backends.base import Backend, GenerationRequest, GenerationResult
from .errors import ConfigError, HfevolError
from .status import NOT_SENT_PREFIX

logger = logging.getLogger(__name__)


@dataclass
class MeteredBackend(Backend):
    """Count the tokens of ``backend``'s answers; with ``budget_tokens``, send nothing once that many are used."""

    backend: Backend
    budget_tokens: int | None = None
    in_flight: int | None = None
    """With a budget: requests past the budget check and not yet answered (the endpoint's whole in-flight limit), so a
    run passes its budget by at most this many answers."""
    tokenizer: Callable[[], tuple[Any, str] | None] | None = None
    """Finds the tokenizer (and its name) that counts what the server did not; called once, on the first answer
    without counts."""
    kind = "metered"

    def __post_init__(self) -> None:
        if self.budget_tokens is not None and (not isinstance(self.budget_tokens, int) or self.budget_tokens < 1):
            raise ConfigError(f"--budget-tokens {self.budget_tokens!r} must be an integer >= 1")

    def __getstate__(self) -> dict[str, Any]:
        # The tokenizer finder is runtime state: it closes over the command's options (--out among them), so in a
        # transform's datasets fingerprint it would make an identical run into another folder miss the cache.
        state = super().__getstate__()
        state.pop("tokenizer", None)
        return state

    def _state(self) -> dict[str, int]:
        if getattr(self, "_counts", None) is None:
            self._counts = {"requests": 0, "prompt": 0, "completion": 0, "unknown": 0, "not_sent": 0}
            self._by_tokenizer = {"prompt": 0, "completion": 0}
        return self._counts

    def _fallback(self) -> tuple[Any, str] | None:
        """The tokenizer for the counts the server did not give (found once; None when there is none)."""
        if not hasattr(self, "_found"):
            self._found: tuple[Any, str] | None = None
            finder = getattr(self, "tokenizer", None)  # absent in a copy made by pickling (a num_proc worker)
            if finder is not None:
                try:
                    self._found = finder()
                except HfevolError as exc:  # counting tokens never stops a run: the answers stay unknown
                    logger.warning("token counts without usage stay unknown: %s", str(exc).splitlines()[0])
        return self._found

    @property
    def used(self) -> int:
        """Prompt plus completion tokens of every answer so far."""
        s = self._state()
        return s["prompt"] + s["completion"]

    @property
    def hits(self) -> int | None:
        """The request cache's hits, when the wrapped backend has a cache."""
        return getattr(self.backend, "hits", None)

    def tokens(self) -> dict[str, Any]:
        """The counts for the summary and the run record: requests, prompt, completion, unknown, not_sent (and budget),
        and ``counted_by``: the prompt and completion tokens the server reported and those the tokenizer counted."""
        out: dict[str, Any] = dict(self._state())
        mine = dict(self._by_tokenizer)
        server = {"prompt": out["prompt"] - mine["prompt"], "completion": out["completion"] - mine["completion"]}
        found = self._fallback() if any(mine.values()) else None
        out["counted_by"] = {"server": server, "tokenizer": {**mine, **({"name": found[1]} if found else {})}}
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

    def _count(self, request: GenerationRequest, result: GenerationResult) -> GenerationResult:
        s = self._state()
        if result.ok:
            s["requests"] += 1
            prompt, completion = result.prompt_tokens, result.completion_tokens
            found = self._fallback() if prompt is None or completion is None else None
            if found is not None:
                if prompt is None:
                    prompt = prompt_tokens(found[0], request)
                    self._by_tokenizer["prompt"] += prompt
                if completion is None:
                    completion = len(found[0](result.text or "", add_special_tokens=False).input_ids)
                    self._by_tokenizer["completion"] += completion
            if prompt is None or completion is None:
                s["unknown"] += 1
            s["prompt"] += prompt or 0
            s["completion"] += completion or 0
        return result

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        requests = list(requests)
        if not self._spent():
            return [self._count(q, r) for q, r in zip(requests, self.backend.generate(requests))]
        return [self._count(r, hit) if (hit := self._from_cache(r)) is not None else self._not_sent() for r in requests]

    async def agenerate(self, request: GenerationRequest) -> GenerationResult:
        if self.budget_tokens is None:
            return self._count(request, await self.backend.agenerate(request))
        hit = self._from_cache(request)  # answers in the cache are read whatever the budget
        if hit is not None:
            return self._count(request, hit)
        async with self._gate():  # the budget is checked when the request is about to be sent, not when it is queued
            if self._spent():
                return self._not_sent()
            return self._count(request, await self.backend.agenerate(request))

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
    return MeteredBackend(backend, budget, in_flight * len(urls) if budget and in_flight and urls else None, tokenizer=lambda: find_tokenizer(args, backend))


class NoSend(Backend):
    """The backend of a dry run: building requests needs none, and sending one is a bug."""

    kind = "dry-run"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": None, "revision": None}

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        raise AssertionError("a dry run sends nothing")


def find_tokenizer(args: argparse.Namespace, backend: Backend | None = None) -> tuple[Any, str] | None:
    """The tokenizer that counts tokens here, and its name: the ``--tokenizer`` (or the local ``--model``'s), else
    the chat-template tokenizer the endpoint behind ``backend`` has loaded; None without one. No weights are loaded."""
    name = getattr(args, "tokenizer", None) or (None if getattr(args, "endpoint", None) else getattr(args, "model", None))
    if name:
        from .extras import available

        if available("tokenizer"):
            from .models.loading import load_tokenizer

            return load_tokenizer(name), f"tokenizer {Path(name).name if _is_path(name) else name}"  # no local path in a record
    from .transform import endpoint_behind

    endpoint = endpoint_behind(backend)
    template = getattr(endpoint, "_template", None)
    return (template, f"tokenizer {endpoint.tokenizer or 'of the served model'}") if endpoint is not None and template is not None else None


def _is_path(name: str) -> bool:
    return "/" in name and Path(name).expanduser().exists()


def prompt_tokens(tok: Any, request: GenerationRequest) -> int:
    """The prompt tokens of ``request`` by ``tok``: its chat template rendered, else the message texts."""
    if getattr(tok, "chat_template", None):
        text = tok.apply_chat_template(request.as_messages(), tokenize=False, add_generation_prompt=True)
        return len(tok(text, add_special_tokens=False).input_ids)
    return sum(len(tok(c, add_special_tokens=False).input_ids) for _, c in request.messages)


def token_counter(args: argparse.Namespace) -> tuple[Callable[[GenerationRequest], int], str]:
    """A prompt-token counter and its name: the ``--tokenizer`` (or the local ``--model``) with its chat template,
    else an estimate of four characters a token (the server's own tokenizer is not asked: a dry run sends nothing)."""
    found = find_tokenizer(args)
    if found is not None:
        tok, name = found
        return (lambda r: prompt_tokens(tok, r)), name if getattr(tok, "chat_template", None) else f"{name}, without a chat template"
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
    mine = t["counted_by"]["tokenizer"]
    counted = (
        f" ({mine['prompt']} prompt + {mine['completion']} completion counted by {mine.get('name', 'a tokenizer')})"
        if mine["prompt"] or mine["completion"]
        else ""
    )
    print(f"\n   tokens: {t['prompt']} prompt + {t['completion']} completion over {t['requests']} answer(s){unknown}{counted}")
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
