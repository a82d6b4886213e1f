"""The retry policy and the mapping of real HTTP responses to hfevol errors (no server needed)."""

from __future__ import annotations

import email.utils
import random

import httpx2
import pytest
from huggingface_hub.utils import hf_raise_for_status

from hfevol.backends.retry import RetryPolicy, parse_retry_after
from hfevol.backends.transport import classify
from hfevol.errors import AuthenticationError, ConfigError, EndpointError, EndpointUnreachableError


def test_backoff_is_jittered_and_capped_exponentially():
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=4.0)
    rng = random.Random(0)
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:  # min(4, 0.5 * 2**(k-1)) by hand
        waits = [policy.delay(attempt, None, rng) for _ in range(300)]
        assert min(waits) >= 0 and max(waits) <= cap
        assert max(waits) > 0.8 * cap  # full jitter spreads over the whole range
        assert len(set(waits)) > 250


def test_retry_after_is_a_floor_even_above_max_backoff():
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0)
    rng = random.Random(1)
    waits = [policy.delay(1, 7.0, rng) for _ in range(100)]
    assert min(waits) >= 7.0 and max(waits) <= 7.7


def test_retry_after_header_forms():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30.0)
    assert parse_retry_after(email.utils.formatdate(999_000, usegmt=True), now=1_000_000) == 0.0


@pytest.mark.parametrize("field, value", [("max_attempts", 0), ("timeout", 0), ("max_total_seconds", float("inf")), ("initial_backoff", -1)])
def test_bad_policies_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        RetryPolicy(**{field: value})


def _raised(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Exception:
    request = httpx2.Request("POST", "http://127.0.0.1:1/generate")
    response = httpx2.Response(status, content=body, headers=headers or {}, request=request)
    with pytest.raises(Exception) as info:
        hf_raise_for_status(response)
    return info.value


@pytest.mark.parametrize(
    "status, body, cause, retryable",
    [
        (429, b'{"error": "Model is overloaded", "error_type": "overloaded"}', "overloaded", True),
        (429, b'{"error": {"message": "slow down", "type": "rate_limit"}}', "rate_limited", True),
        (503, b'{"error": "Model is loading", "estimated_time": 12.5}', "overloaded", True),
        (500, b'{"error": "Incomplete generation", "error_type": "incomplete_generation"}', "server_error", True),
        (424, b'{"error": "Request failed during generation", "error_type": "generation"}', "server_error", True),
        (504, b"gateway timeout", "server_error", True),
        (408, b"", "timeout", True),
        (422, b'{"error": "Input validation error: `inputs` must have less than 10 tokens. Given: 12", "error_type": "validation"}', "rejected", False),
        (400, b'{"object": "error", "message": "maximum context length is 2048 tokens", "type": "BadRequestError"}', "rejected", False),
        (413, b"", "rejected", False),
        (404, b"", "not_found", False),
    ],
)
def test_status_codes_map_to_causes(status, body, cause, retryable):
    error = classify(_raised(status, body), "http://127.0.0.1:1")
    assert error.cause == cause and error.retryable is retryable and error.status == status
    assert f"HTTP {status}" in error.message


def test_server_messages_reach_the_row_reason():
    error = classify(_raised(422, b'{"error": "Input validation error: `inputs` must have less than 10 tokens. Given: 12", "error_type": "validation"}'), "u")
    assert "must have less than 10 tokens" in error.message
    vllm = classify(_raised(400, b'{"object": "error", "message": "maximum context length is 2048 tokens"}'), "u")
    assert "maximum context length" in vllm.message


def test_retry_after_and_loading_time_are_read():
    assert classify(_raised(429, b"", {"Retry-After": "4"}), "u").retry_after == 4.0
    assert classify(_raised(503, b'{"error": "Model is loading", "estimated_time": 12.5}'), "u").retry_after == 12.5


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_fatal_and_say_what_to_do(status):
    error = classify(_raised(status), "http://127.0.0.1:1")
    assert isinstance(error, AuthenticationError) and isinstance(error, PermissionError)
    assert error.fatal and not error.retryable
    assert "HF_TOKEN" in str(error)


def test_network_failures_are_retryable():
    request = httpx2.Request("POST", "http://127.0.0.1:1/")
    refused = classify(httpx2.ConnectError("All connection attempts failed", request=request), "http://127.0.0.1:1")
    assert isinstance(refused, EndpointUnreachableError) and refused.cause == "connection" and refused.retryable
    dropped = classify(httpx2.RemoteProtocolError("Server disconnected", request=request), "u")
    assert dropped.cause == "connection" and type(dropped) is EndpointError
    assert classify(httpx2.ReadTimeout("timed out", request=request), "u").cause == "timeout"


def test_bugs_are_not_swallowed():
    with pytest.raises(KeyError):
        classify(KeyError("oops"), "u")
