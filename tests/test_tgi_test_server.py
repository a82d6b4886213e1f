"""The TGI test server itself: TGI's shapes, status codes and strictness (echo engine, raw HTTP)."""

from __future__ import annotations

import httpx2
import pytest

from hfevol.testing import TGITestServer

pytestmark = pytest.mark.integration


@pytest.fixture
def srv():
    with TGITestServer(max_total_tokens=50, max_input_tokens=40) as server:
        yield server


def test_info_health_models_and_metrics(srv):
    info = httpx2.get(srv.url + "/info").json()
    assert info["model_id"] == "hfevol/echo-model" and info["max_concurrent_requests"] == 128 and info["max_total_tokens"] == 50
    assert httpx2.get(srv.url + "/health").status_code == 200
    assert httpx2.get(srv.url + "/v1/models").json()["data"][0]["id"] == "hfevol/echo-model"
    assert "tgi_request_count 3" in httpx2.get(srv.url + "/metrics").text


def test_generate_shapes(srv):
    body = {"inputs": "one two three", "parameters": {"max_new_tokens": 3, "details": True, "seed": 7, "do_sample": True}}
    out = httpx2.post(srv.url + "/generate", json=body).json()
    assert out["generated_text"] == "Rewritten (7): one" and out["details"]["finish_reason"] == "length"
    assert out["details"]["generated_tokens"] == 3 and out["details"]["seed"] == 7 and out["details"]["prefill"] == []
    assert [t["text"] for t in out["details"]["tokens"]] == ["Rewritten", "(7):", "one"]
    compat = httpx2.post(srv.url + "/", json=body).json()
    assert isinstance(compat, list) and compat[0] == out  # the compat route wraps the answer in a list, as TGI does


@pytest.mark.parametrize(
    "body, message",
    [
        ({"inputs": "", "parameters": {}}, "`inputs` cannot be empty"),
        ({"inputs": "a", "parameters": {"temperature": 0}}, "`temperature` must be strictly positive"),
        ({"inputs": "a", "parameters": {"top_p": 1.0}}, "`top_p` must be > 0.0 and < 1.0"),
        ({"inputs": "a", "parameters": {"max_new_tokens": 10, "stop": ["1", "2", "3", "4", "5"]}}, "up to 4 stop sequences"),
        (
            {"inputs": "a b c", "parameters": {"max_new_tokens": 48}},
            "`inputs` tokens + `max_new_tokens` must be <= 50. Given: 3 `inputs` tokens and 48 `max_new_tokens`",
        ),
        ({"inputs": "w " * 45, "parameters": {"max_new_tokens": 1}}, "`inputs` must have less than 40 tokens. Given: 45"),
        ({"inputs": "a", "parameters": {"decoder_input_details": True, "max_new_tokens": 1}}, None),
    ],
)
def test_validation_errors_have_tgi_shape(body, message):
    with TGITestServer(max_total_tokens=50, max_input_tokens=40, prefill_logprobs=True) as server:
        response = httpx2.post(server.url + "/generate", json=body)
    assert response.status_code == 422
    error = response.json()
    assert error["error_type"] == "validation" and error["error"].startswith("Input validation error: ")
    assert message is None or message in error["error"]


def test_strictness(srv):
    assert httpx2.post(srv.url + "/generate", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    assert httpx2.post(srv.url + "/generate_stream", json={"inputs": "a"}).status_code == 404
    assert httpx2.post(srv.url + "/generate", json={"inputs": "a", "stream": True}).status_code == 422
    assert httpx2.post(srv.url + "/v1/chat/completions", json={"messages": [{"role": "user"}]}).status_code == 422
    assert [(r.route, r.status) for r in srv.log] == [("/generate", 422), ("/generate_stream", 404), ("/generate", 422), ("/v1/chat/completions", 422)]


def test_api_key_guards_generation_but_not_info():
    with TGITestServer(api_key="k") as server:
        assert httpx2.get(server.url + "/info").status_code == 200
        assert httpx2.post(server.url + "/generate", json={"inputs": "a"}).status_code == 401
        ok = httpx2.post(server.url + "/generate", json={"inputs": "a", "parameters": {"max_new_tokens": 2}}, headers={"Authorization": "Bearer k"})
        assert ok.status_code == 200


def test_overload_beyond_max_concurrent_requests():
    import concurrent.futures

    with TGITestServer(latency=0.3, max_concurrent_requests=2) as server, concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: httpx2.post(server.url + "/generate", json={"inputs": "a", "parameters": {"max_new_tokens": 2}}, timeout=10), range(4)))
    statuses = sorted(r.status_code for r in codes)
    assert statuses == [200, 200, 429, 429]
    assert {r.json()["error_type"] for r in codes if r.status_code == 429} == {"overloaded"}


def test_a_queued_empty_completion_waits_for_a_request_that_generates(srv):
    from hfevol.testing import Fault

    srv.faults.add(Fault("empty"))
    refused = httpx2.post(srv.url + "/generate", json={"inputs": "word " * 60, "parameters": {"max_new_tokens": 3}})
    assert refused.status_code == 422  # longer than max_input_tokens: nothing generated, so nothing to empty
    answered = httpx2.post(srv.url + "/generate", json={"inputs": "one two", "parameters": {"max_new_tokens": 3}}).json()
    assert answered["generated_text"] == ""
    assert [r.fault for r in srv.generations(status=None)] == [None, "empty"]
