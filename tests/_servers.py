"""Helpers for the endpoint tests: a quick retry policy, seed rows, waits with a deadline."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

from hfevol.backends.retry import RetryPolicy

# Short waits so that fault tests take seconds; the logic is the production one.
FAST = RetryPolicy(max_attempts=8, max_total_seconds=20.0, timeout=5.0, initial_backoff=0.01, max_backoff=0.05)


def rows(n: int) -> list[dict[str, str]]:
    return [{"instruction": f"Explain topic number {i} in two sentences."} for i in range(n)]


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``condition`` from a coroutine until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.01)
