"""The retry policy of the endpoint backends: how often, how long, and how long to wait between tries."""

from __future__ import annotations

import email.utils
import math
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class RetryPolicy:
    """Limits for one request, all configurable.

    Retryable failures (429, 503 and other 5xx, TGI's ``overloaded`` and model-loading
    errors, time-outs, dropped connections, malformed bodies) are tried again after an
    exponential back-off with full jitter: attempt ``k`` waits a uniform random time in
    ``[0, min(max_backoff, initial_backoff * 2**(k-1))]``. A ``Retry-After`` header (or
    the ``estimated_time`` of a model that is loading) is honoured: the wait is at least
    that long. A request gives up when it has made ``max_attempts`` attempts or when the
    next wait would end after ``max_total_seconds`` from its first attempt.

    Args:
        max_attempts: attempts per request, the first included.
        max_total_seconds: time budget of one request, all attempts and waits included.
        timeout: time-out of one attempt, in seconds (the server must answer within it).
        initial_backoff: the cap of the first wait, in seconds.
        max_backoff: the largest cap of a wait, in seconds (``Retry-After`` may ask for more).
    """

    max_attempts: int = 8
    max_total_seconds: float = 900.0
    timeout: float = 300.0
    initial_backoff: float = 0.5
    max_backoff: float = 30.0

    def __post_init__(self) -> None:
        if not (isinstance(self.max_attempts, int) and self.max_attempts >= 1):
            raise ConfigError(f"retry option max_attempts={self.max_attempts!r} must be an integer >= 1")
        for name in ("max_total_seconds", "timeout", "initial_backoff", "max_backoff"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"retry option {name}={value!r} must be a number > 0")

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        cap = min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1))
        wait = rng.uniform(0, cap)
        if retry_after is not None:
            # Honour the server, plus a little jitter so that the clients it throttled do not return together.
            wait = max(wait, retry_after * (1 + 0.1 * rng.random()))
        return wait

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date. None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None
