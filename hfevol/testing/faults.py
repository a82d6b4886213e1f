"""Faults that the test server injects on demand: queued ones for exact tests, random ones for soak tests."""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["status", "delay", "drop", "malformed", "empty", "truncated"]


@dataclass(frozen=True)
class Fault:
    """One injected failure.

    - ``status``: answer ``status`` with ``body`` (TGI's error JSON by default) and an
      optional ``Retry-After`` header;
    - ``delay``: wait ``seconds`` before answering normally (a slow server, or a time-out);
    - ``drop``: close the connection without an answer (reset);
    - ``malformed``: answer 200 with a body that is not JSON;
    - ``empty``: answer normally but with an empty completion;
    - ``truncated``: announce a longer body than is sent, then close.
    """

    kind: FaultKind
    status: int = 503
    body: dict | None = None
    retry_after: str | None = None
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return f"status {self.status}" if self.kind == "status" else self.kind


# TGI's own error bodies for the retryable statuses.
OVERLOADED = Fault("status", 429, {"error": "Model is overloaded", "error_type": "overloaded"})
RATE_LIMITED = Fault("status", 429, {"error": "Rate limit reached", "error_type": "rate_limit"}, retry_after="1")
UNAVAILABLE = Fault("status", 503, {"error": "Model is loading", "error_type": "unavailable", "estimated_time": 0.2})
INCOMPLETE = Fault("status", 500, {"error": "Incomplete generation", "error_type": "incomplete_generation"})
DROP = Fault("drop")
MALFORMED = Fault("malformed")

BODY_FAULTS: frozenset[str] = frozenset({"malformed", "empty", "truncated"})
"""Fault kinds that spoil a generated answer; a request refused before generating keeps none of them."""

RETRYABLE_MIX: tuple[Fault, ...] = (OVERLOADED, RATE_LIMITED, UNAVAILABLE, INCOMPLETE, DROP, MALFORMED)
"""The mix used for "a fraction of requests fail at random with retryable errors"."""


class FaultPlan:
    """Which request gets which fault. Thread-safe.

    Queued faults (:meth:`add`) are served first, in order, to the generation routes (or to
    the route named). Then, with probability ``rate``, a random fault from ``mix``.
    """

    GENERATION_ROUTES = frozenset({"/", "/generate", "/v1/chat/completions", "/v1/completions"})

    def __init__(self, rate: float = 0.0, mix: tuple[Fault, ...] = RETRYABLE_MIX, seed: int = 0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate {rate!r} must be in [0, 1]")
        self.rate = rate
        self.mix = mix
        self._rng = random.Random(seed)
        self._queue: deque[tuple[Fault, str | None]] = deque()
        self._lock = threading.Lock()

    def add(self, fault: Fault, times: int = 1, *, route: str | None = None) -> "FaultPlan":
        with self._lock:
            self._queue.extend([(fault, route)] * times)
        return self

    def requeue(self, fault: Fault) -> None:
        """Put ``fault`` back at the front of the queue: it met a request that it could not spoil."""
        with self._lock:
            self._queue.appendleft((fault, None))

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self.rate = 0.0

    def pick(self, route: str) -> Fault | None:
        with self._lock:
            for i, (fault, only) in enumerate(self._queue):
                if only == route or (only is None and route in self.GENERATION_ROUTES):
                    del self._queue[i]
                    return fault
            if self.rate and route in self.GENERATION_ROUTES and self._rng.random() < self.rate:
                return self._rng.choice(self.mix)
        return None
