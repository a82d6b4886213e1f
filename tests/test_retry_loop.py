"""The retry loop of the endpoint transport on a made-up clock, with ``httpx2.MockTransport`` and no server.

Every wait is worked out by hand from :class:`~hfevol.backends.retry.RetryPolicy`'s rule:
attempt ``k`` waits a jitter in ``[0, min(max_backoff, initial_backoff * 2**(k-1))]``, at
least ``Retry-After`` (plus up to 10 %), and the request gives up after ``max_attempts``
attempts or when the next wait would end past ``max_total_seconds``. The jitter here always
takes the top of its range (:class:`_TopJitter`), so each wait is exact. Behaviour against
a real server (which faults are retried, what reaches the server) is in
test_endpoint_backends.py.
"""

from __future__ import annotations

import asyncio
import logging

import httpx2
import pytest

from hfevol.backends.retry import RetryPolicy
from hfevol.backends.transport import EndpointStats, HttpCall, Transport
from hfevol.errors import EndpointError, EndpointUnreachableError

URL = "http://127.0.0.1:9"
POLICY = RetryPolicy(max_attempts=5, max_total_seconds=100.0, timeout=5.0, initial_backoff=0.5, max_backoff=4.0)


class _TopJitter:
    """A stand-in for ``random.Random``: the full-jitter draw is its upper bound, the Retry-After jitter a set fraction."""

    def __init__(self, fraction: float = 0.0) -> None:
        self.fraction = fraction

    def uniform(self, low: float, high: float) -> float:
        return high

    def random(self) -> float:
        return self.fraction


class _Clock:
    """A monotonic clock that moves only when the loop sleeps or an attempt takes time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


CALL = HttpCall("POST", "/generate", {"inputs": "q"})


def _ok(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, json={"answer": "ok"})


def _transport(policy: RetryPolicy = POLICY, *, fraction: float = 0.0, urls: tuple[str, ...] = (URL,), handler=_ok) -> tuple[Transport, _Clock]:
    transport = Transport(
        list(urls),
        limits=[4] * len(urls),
        policy=policy,
        headers={},
        token=None,
        stats=EndpointStats(),
        transport_factory=lambda: httpx2.MockTransport(handler),
    )
    clock = _Clock()
    transport.clock, transport.sleep, transport.rng = clock, clock.sleep, _TopJitter(fraction)
    return transport, clock


def _failing(errors: list[EndpointError | None], clock: _Clock, *, takes: float = 0.0, answer: str = "ok"):
    """A parser of the (mock) server's answer that raises the listed errors in turn (None: answers), each attempt taking ``takes`` seconds."""
    calls: list[float] = []

    def parse(body, url):
        assert body == {"answer": "ok"} and url == URL
        calls.append(clock.now)
        clock.now += takes
        error = errors[len(calls) - 1] if len(calls) <= len(errors) else None
        if error is not None:
            raise error
        return answer

    return parse, calls


def _busy(retry_after: float | None = None) -> EndpointError:
    return EndpointError(f"HTTP 503 from {URL}: busy", cause="overloaded", url=URL, status=503, retry_after=retry_after)


def _run(transport: Transport, parse):
    async def go():
        try:
            return await transport.call(CALL, parse)
        finally:
            await transport.aclose()

    return asyncio.run(go())


def test_waits_double_from_the_initial_backoff_up_to_the_cap_then_the_request_gives_up():
    transport, clock = _transport()
    send, calls = _failing([_busy()] * 10, clock)
    with pytest.raises(EndpointError) as info:
        _run(transport, send)
    assert len(calls) == 5  # max_attempts
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0]  # 0.5 * 2**(k-1), capped at max_backoff=4; no wait after the last attempt
    assert str(info.value).startswith("gave up after 5 attempt(s) in 7.5 s; last error: HTTP 503 from http://127.0.0.1:9: busy")
    assert (info.value.cause, info.value.status, info.value.url) == ("overloaded", 503, URL)
    assert transport.stats.snapshot() == {"successes": 0, "retries": {"overloaded": 4}, "failures": {"overloaded": 1}}


def test_a_request_that_succeeds_on_a_later_attempt_returns_its_answer():
    transport, clock = _transport()
    send, calls = _failing([_busy(), EndpointError("dropped", cause="connection", url=URL)], clock, answer="the answer")
    assert _run(transport, send) == "the answer"
    assert len(calls) == 3 and clock.sleeps == [0.5, 1.0]
    assert transport.stats.snapshot() == {"successes": 1, "retries": {"overloaded": 1, "connection": 1}, "failures": {}}


@pytest.mark.parametrize("fraction, wait", [(0.0, 7.0), (0.5, 7.35)])
def test_retry_after_sets_the_least_wait_plus_up_to_ten_percent(fraction, wait):
    transport, clock = _transport(fraction=fraction)
    send, calls = _failing([_busy(retry_after=7.0)], clock)
    assert _run(transport, send) == "ok"
    assert clock.sleeps == [pytest.approx(wait)]  # 7 * (1 + 0.1 * fraction); the back-off's own 0.5 is smaller
    assert calls[1] - calls[0] == pytest.approx(wait)


def test_a_short_retry_after_does_not_shorten_the_back_off():
    transport, clock = _transport()
    send, _ = _failing([_busy(), _busy(), _busy(retry_after=0.1)], clock)
    assert _run(transport, send) == "ok"
    assert clock.sleeps == [0.5, 1.0, 2.0]  # max(2.0, 0.1 * 1.0)


def test_a_retry_after_header_of_a_real_response_is_read(caplog):
    sent: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        if len(sent) == 1:
            return httpx2.Response(429, headers={"retry-after": "3"}, json={"error": "slow down", "error_type": "rate_limited"})
        return _ok(request)

    transport, clock = _transport(handler=handler)
    with caplog.at_level(logging.INFO, logger="hfevol.backends.transport"):
        assert _run(transport, lambda body, url: body) == {"answer": "ok"}
    assert clock.sleeps == [3.0] and len(sent) == 2
    assert [(r.method, str(r.url), r.content) for r in sent] == [("POST", URL + "/generate", b'{"inputs":"q"}')] * 2
    assert transport.stats.snapshot()["retries"] == {"rate_limited": 1}
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == f"retrying /generate in 3.00 s (attempt 1 of 5 failed, cause rate_limited): HTTP 429 from {URL}: slow down"


def test_each_retry_is_logged_with_its_cause_and_wait_and_a_success_logs_nothing_more(caplog):
    transport, clock = _transport()
    send, _ = _failing([_busy(), EndpointError(f"the connection to {URL} dropped", cause="connection", url=URL)], clock)
    with caplog.at_level(logging.INFO, logger="hfevol.backends"):
        assert _run(transport, send) == "ok"
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("hfevol.backends.transport", "INFO", f"retrying /generate in 0.50 s (attempt 1 of 5 failed, cause overloaded): HTTP 503 from {URL}: busy"),
        ("hfevol.backends.transport", "INFO", f"retrying /generate in 1.00 s (attempt 2 of 5 failed, cause connection): the connection to {URL} dropped"),
    ]


def test_the_total_budget_counts_attempts_and_waits_and_stops_before_a_wait_that_would_pass_it():
    policy = RetryPolicy(max_attempts=50, max_total_seconds=10.0, timeout=5.0, initial_backoff=0.5, max_backoff=4.0)
    transport, clock = _transport(policy)
    send, calls = _failing([_busy()] * 50, clock, takes=3.0)
    with pytest.raises(EndpointError, match=r"^gave up after 3 attempt\(s\) in 10\.5 s; last error: HTTP 503") as info:
        _run(transport, send)
    # attempt 1 ends at 3 s, waits 0.5; attempt 2 ends at 6.5 s, waits 1; attempt 3 ends at 10.5 s: a wait of 2 would end at 12.5 > 10
    assert [c - 1000.0 for c in calls] == [0.0, 3.5, 7.5] and clock.sleeps == [0.5, 1.0]
    assert info.value.cause == "overloaded"


def test_a_retry_after_longer_than_the_budget_gives_up_at_once():
    policy = RetryPolicy(max_attempts=8, max_total_seconds=10.0, timeout=5.0, initial_backoff=0.5, max_backoff=4.0)
    transport, clock = _transport(policy)
    send, calls = _failing([_busy(retry_after=60.0)], clock)
    with pytest.raises(EndpointError, match=r"gave up after 1 attempt\(s\) in 0\.0 s"):
        _run(transport, send)
    assert len(calls) == 1 and clock.sleeps == []


@pytest.mark.parametrize("cause, status", [("rejected", 422), ("auth", 401), ("not_found", 404)])
def test_a_failure_that_is_not_retryable_is_raised_at_once(cause, status):
    transport, clock = _transport()
    error = EndpointError(f"HTTP {status} from {URL}", cause=cause, url=URL, status=status)
    send, calls = _failing([error, None], clock)
    with pytest.raises(EndpointError) as info:
        _run(transport, send)
    assert info.value is error and len(calls) == 1 and clock.sleeps == []
    assert transport.stats.snapshot()["failures"] == {cause: 1}


def test_after_a_budget_of_failed_connections_a_new_request_fails_without_being_sent():
    policy = RetryPolicy(max_attempts=3, max_total_seconds=10.0, timeout=5.0, initial_backoff=0.5, max_backoff=4.0)
    transport, clock = _transport(policy)
    refused = EndpointUnreachableError(f"cannot connect to {URL}", cause="connection", url=URL)

    async def go():
        send, first = _failing([refused] * 10, clock)
        with pytest.raises(EndpointError, match=r"gave up after 3 attempt\(s\)"):
            await transport.call(CALL, send)
        clock.now += 11.0  # more than one request's budget since the connections started failing
        send, second = _failing([], clock)
        with pytest.raises(EndpointUnreachableError, match=r"no endpoint has accepted a connection for more than 10 s \(http://127.0.0.1:9\)") as info:
            await transport.call(CALL, send)
        await transport.aclose()
        return first, second, info.value

    first, second, error = asyncio.run(go())
    assert len(first) == 3 and second == []  # the second request never reached send
    assert "restart the server" in error.hint
