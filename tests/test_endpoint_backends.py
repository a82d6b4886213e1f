"""The TGI and OpenAI backends against the local TGI test server (echo engine): protocol, faults, concurrency."""

from __future__ import annotations

import asyncio
import pickle
import time

import pytest
from _servers import FAST, free_port, rows, wait_until

from hfevol.backends import GenerationRequest, SamplingParams
from hfevol.backends.openai import OpenAIBackend
from hfevol.backends.retry import RetryPolicy
from hfevol.backends.tgi import TGIBackend
from hfevol.errors import AuthenticationError, ConfigError, EndpointUnreachableError
from hfevol.evolution import EvolInstruct
from hfevol.testing import Fault, FaultPlan, TGITestServer
from hfevol.testing.faults import DROP, MALFORMED, OVERLOADED, RATE_LIMITED, UNAVAILABLE

pytestmark = pytest.mark.integration

SHORT = SamplingParams(max_new_tokens=64)


def _requests(n: int, params: SamplingParams = SHORT) -> list[GenerationRequest]:
    return [GenerationRequest.chat(f"Original prompt:\nquestion {i}", params=params, seed=i) for i in range(n)]


@pytest.fixture
def server():
    with TGITestServer() as srv:
        yield srv


@pytest.mark.parametrize(
    "cls, route, path",
    [
        (TGIBackend, "chat", "/v1/chat/completions"),
        (TGIBackend, "generate", "/generate"),
        (OpenAIBackend, "chat", "/v1/chat/completions"),
        (OpenAIBackend, "completions", "/v1/completions"),
    ],
)
def test_each_route_generates_and_sends_the_sampling_settings(server, cls, route, path):
    backend = cls(urls=server.url, route=route, retry=FAST, tokenizer="embedded")
    params = SamplingParams(temperature=0.5, top_p=0.9, max_new_tokens=32, stop=("###",))
    results = backend.generate(_requests(3, params))
    assert [r.text for r in results] == [f"Rewritten ({i}): question {i}" for i in range(3)]  # the echo's rule, per seed
    assert all(r.ok and r.finish_reason == "stop" for r in results)
    sent = [r for r in server.generations() if r.route == path]
    assert len(sent) == 3
    body = next(r.body for r in sent if r.body.get("seed", (r.body.get("parameters") or {}).get("seed")) == 0)  # the three arrive in any order
    if path == "/generate":
        p = body["parameters"]
        assert (p["temperature"], p["top_p"], p["max_new_tokens"], p["stop"], p["do_sample"], p["details"]) == (0.5, 0.9, 32, ["###"], True, True)
        assert "<|im_start|>user\nOriginal prompt:\nquestion 0<|im_end|>" in body["inputs"]  # the chat template was rendered here
    else:
        assert (body["temperature"], body["top_p"], body["max_tokens"], body["stop"]) == (0.5, 0.9, 32, ["###"])
        assert body["model"] == "hfevol/echo-model"
    assert {r.body.get("seed", (r.body.get("parameters") or {}).get("seed")) for r in sent} == {0, 1, 2}


def test_greedy_omits_top_p_and_sends_temperature_zero_on_chat(server):
    TGIBackend(urls=server.url, retry=FAST).generate(_requests(1, SamplingParams(temperature=0, top_p=1.0, max_new_tokens=8)))
    body = server.generations()[0].body
    assert body["temperature"] == 0.0 and "top_p" not in body  # TGI refuses top_p=1.0


def test_describe_records_the_served_model_and_never_the_token(server, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_supersecret_value")
    backend = TGIBackend(urls=[server.url + "/v1/"], retry=FAST)
    desc = backend.describe()
    assert desc["model"] == "hfevol/echo-model" and desc["revision"] == server.engine.model_sha
    assert desc["urls"] == [server.url]
    assert "supersecret" not in repr(desc) + repr(backend) + repr(pickle.loads(pickle.dumps(backend)).__dict__)
    assert backend.cache_identity() == {
        "backend": "tgi",
        "route": "chat",
        "model": "hfevol/echo-model",
        "revision": server.engine.model_sha,
        "model_name": "hfevol/echo-model",
    }


def test_token_is_sent_as_bearer(monkeypatch):
    monkeypatch.setenv("MY_KEY", "k-123")
    with TGITestServer(api_key="k-123") as srv:
        results = OpenAIBackend(urls=srv.url, token_env="MY_KEY", retry=FAST).generate(_requests(2))
    assert all(r.ok for r in results)


def test_the_hugging_face_token_goes_only_to_hugging_face_hosts(monkeypatch):
    from hfevol.backends.auth import is_hf_host

    monkeypatch.setenv("HF_TOKEN", "hf-key-9")
    with TGITestServer(api_key="hf-key-9") as srv:  # a self-hosted server on 127.0.0.1
        with pytest.raises(AuthenticationError) as info:
            TGIBackend(urls=srv.url, retry=FAST).check()  # HF_TOKEN is not sent to it
        assert "token_env" in info.value.hint
        assert TGIBackend(urls=srv.url, retry=FAST, token_env="HF_TOKEN").generate(_requests(1))[0].ok  # unless asked
    assert is_hf_host("https://abc123.us-east-1.aws.endpoints.huggingface.cloud")
    assert is_hf_host("https://router.huggingface.co/v1") and is_hf_host("https://user-demo.hf.space")
    assert not is_hf_host("http://127.0.0.1:8080") and not is_hf_host("https://evilhuggingface.co")
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.internal.example")
    assert is_hf_host("https://hub.internal.example/api")


def test_credentials_in_headers_or_urls_are_refused():
    with pytest.raises(ConfigError, match="token_env"):
        TGIBackend(urls="http://127.0.0.1:1", headers={"Authorization": "Bearer x"})
    with pytest.raises(ConfigError, match="credentials"):
        TGIBackend(urls="http://user:pw@127.0.0.1:1")
    with pytest.raises(ConfigError, match="route"):
        OpenAIBackend(urls="http://127.0.0.1:1", route="generate")


def test_bad_token_fails_at_start_without_retries(monkeypatch):
    monkeypatch.setenv("SERVER_KEY", "hf_wrong_token_value")
    with TGITestServer(api_key="right") as srv:
        backend = TGIBackend(urls=srv.url, retry=FAST, token_env="SERVER_KEY")
        with pytest.raises(AuthenticationError) as info:
            backend.check()
        assert "401" in str(info.value) and "token_env" in str(info.value)
        assert "wrong_token" not in str(info.value)
        assert [r.route for r in srv.log if r.status == 401] == ["/tokenize"]  # one probe, no retry
        assert srv.generations(status=None) == []


def test_bad_token_on_an_openai_server_stops_the_job_after_one_request(monkeypatch):
    monkeypatch.setenv("SERVER_KEY", "hf_wrong")
    with TGITestServer(api_key="right") as srv:  # /v1/models is open on TGI, so the first generation finds out
        backend = OpenAIBackend(urls=srv.url, retry=FAST, token_env="SERVER_KEY")
        with pytest.raises(AuthenticationError):
            backend.generate(_requests(1))
        assert len(srv.generations(status=401)) == 1


def test_unreachable_endpoint_is_a_clear_error_before_any_work():
    backend = TGIBackend(urls=f"http://127.0.0.1:{free_port()}", retry=FAST)
    started = time.monotonic()
    with pytest.raises(EndpointUnreachableError) as info:
        backend.check()
    assert "before any work" in str(info.value) and "Hint:" in str(info.value)
    assert time.monotonic() - started < 5


def test_an_openai_server_is_not_mistaken_for_tgi(server):
    with pytest.raises(Exception, match="404|TGI"):
        TGIBackend(urls=server.url + "/nothing-here", retry=FAST).check()


def test_every_retryable_fault_is_survived(server):
    for fault in (DROP, OVERLOADED, UNAVAILABLE, MALFORMED, Fault("truncated"), Fault("status", 502), Fault("delay", seconds=1.5)):
        server.faults.add(fault)
    backend = TGIBackend(urls=server.url, retry=RetryPolicy(max_attempts=10, max_total_seconds=30, timeout=1.0, initial_backoff=0.01, max_backoff=0.05))
    results = backend.generate(_requests(1))
    assert results[0].ok and results[0].text == "Rewritten (0): question 0"
    stats = backend.stats.snapshot()
    assert stats["successes"] == 1 and stats["failures"] == {}
    assert stats["retries"] == {"connection": 2, "overloaded": 2, "malformed": 1, "server_error": 1, "timeout": 1}
    deadline = time.monotonic() + 5
    while len(server.generations(status=None)) < 8 and time.monotonic() < deadline:  # the timed-out one is logged when the server finishes it
        time.sleep(0.05)
    assert len(server.generations(status=None)) == 8


def test_retry_after_is_honoured(server):
    server.faults.add(RATE_LIMITED)  # Retry-After: 1
    backend = TGIBackend(urls=server.url, retry=FAST)
    backend.check()
    started = time.monotonic()
    assert backend.generate(_requests(1))[0].ok
    assert time.monotonic() - started >= 1.0  # FAST alone would have waited at most 0.05 s
    first, second = server.generations(status=None)
    assert second.started - first.finished >= 0.95


def test_retries_stop_at_the_attempt_limit_and_the_row_fails(server):
    server.faults.add(OVERLOADED, times=3)
    backend = TGIBackend(urls=server.url, retry=RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02))
    [result] = backend.generate(_requests(1))
    assert not result.ok and "gave up after 3 attempt(s)" in result.error and "overloaded" in result.error
    assert backend.stats.snapshot()["failures"] == {"overloaded": 1}


def test_overlong_prompt_is_a_per_row_error_and_is_not_retried():
    with TGITestServer(max_input_tokens=30, max_total_tokens=100) as srv:
        backend = TGIBackend(urls=srv.url, retry=FAST)
        long = GenerationRequest.chat("word " * 200, params=SHORT, seed=1)
        results = backend.generate([long, *_requests(2)])
        assert not results[0].ok and "HTTP 422" in results[0].error and "`inputs` tokens + `max_new_tokens` must be <= 100" in results[0].error
        assert results[1].ok and results[2].ok
        assert len(srv.generations(status=422)) == 1  # sent once
        assert backend.stats.snapshot()["failures"] == {"rejected": 1}


def test_in_flight_limit_per_endpoint(server):
    slow = TGITestServer(latency=0.05).start()
    try:
        backend = TGIBackend(urls=slow.url, max_in_flight=4, retry=FAST)
        assert all(r.ok for r in backend.generate(_requests(40)))
        assert slow.peak_in_flight == 4
    finally:
        slow.stop()


def test_the_server_limit_from_info_caps_in_flight():
    with TGITestServer(latency=0.05, max_concurrent_requests=3) as srv:
        backend = TGIBackend(urls=srv.url, max_in_flight=50, retry=FAST)
        assert backend.check()["limits"] == [3]
        assert all(r.ok for r in backend.generate(_requests(20)))
        assert srv.peak_in_flight == 3 and srv.generations(status=429) == []


def test_load_is_balanced_over_replicas_and_a_dead_replica_is_avoided():
    with TGITestServer(latency=0.02) as a, TGITestServer(latency=0.02) as b:
        backend = TGIBackend(urls=[a.url, b.url], max_in_flight=4, retry=FAST)
        assert all(r.ok for r in backend.generate(_requests(80)))
        na, nb = len(a.generations()), len(b.generations())
        assert na + nb == 80 and min(na, nb) >= 30
        # b dies: every row still completes, on a
        b.stop()
        results = backend.generate(_requests(40))
        assert all(r.ok for r in results)
        assert len(a.generations()) == na + 40


def test_different_models_behind_one_job_are_refused():
    from hfevol.testing import EchoEngine

    other = EchoEngine()
    other.model_id = "someone/else"
    with TGITestServer() as a, TGITestServer(other) as b, pytest.raises(ConfigError, match="different models"):
        TGIBackend(urls=[a.url, b.url], retry=FAST).check()


def test_top_n_tokens_and_grammar_reach_generate(server):
    backend = TGIBackend(urls=server.url, route="generate", tokenizer="embedded", top_n_tokens=2, grammar={"type": "regex", "value": "[a-z ]+"}, retry=FAST)
    [result] = backend.generate(_requests(1))
    body = server.generations()[0].body["parameters"]
    assert body["top_n_tokens"] == 2 and body["grammar"] == {"type": "regex", "value": "[a-z ]+"}
    assert result.logprobs == (-0.5,) * 4 and len(result.top_logprobs[0]) == 2  # the echo's stand-in values
    assert backend.cache_identity()["grammar"] == {"type": "regex", "value": "[a-z ]+"}


def test_evolve_acall_with_20_percent_faults_finishes_every_row():
    from datasets import Dataset

    with TGITestServer(latency=0.01, faults=FaultPlan(rate=0.2, seed=7)) as srv:
        backend = TGIBackend(urls=srv.url, max_in_flight=16, retry=FAST)
        evolve = EvolInstruct(backend=backend, sampling=SHORT)
        out = Dataset.from_list(rows(200)).map(evolve.acall, batched=True, batch_size=32, with_indices=True)
        assert out["evol_status"] == ["ok"] * 200
        assert out["evolved_instruction"][5] == f"Rewritten ({out['evol_seed'][5]}): Explain topic number 5 in two sentences."
        stats = backend.stats.snapshot()
        assert stats["successes"] == 200 and stats["failures"] == {}
        faults = [r for r in srv.generations(status=None) if r.fault]
        assert sum(stats["retries"].values()) == len(faults) >= 25  # ~20% of ~250 attempts
        assert len(srv.generations()) == 200 + sum(1 for r in faults if r.fault in ("malformed", "truncated"))


def test_acall_works_from_a_running_loop_and_keeps_the_fingerprint(server):
    from datasets import Dataset
    from datasets.fingerprint import Hasher

    evolve = EvolInstruct(backend=TGIBackend(urls=server.url, retry=FAST), sampling=SHORT)
    before = Hasher.hash(evolve.acall)
    ds = Dataset.from_list(rows(10))

    async def notebook_cell():
        return await evolve.amap(ds)

    out = asyncio.run(notebook_cell())
    assert out["evol_status"] == ["ok"] * 10
    out2 = ds.map(evolve.acall, batched=True, with_indices=True)  # a second loop: clients are rebuilt for it
    assert out2["evolved_instruction"] == out["evolved_instruction"]
    assert Hasher.hash(evolve.acall) == before


def test_sync_call_with_an_endpoint_uses_the_async_path(server):
    from datasets import Dataset

    evolve = EvolInstruct(backend=OpenAIBackend(urls=server.url, retry=FAST), sampling=SHORT)
    out = Dataset.from_list(rows(6)).map(evolve, batched=True, with_indices=True)
    assert out["evol_status"] == ["ok"] * 6


def test_empty_and_malformed_completions(server):
    server.faults.add(Fault("empty"))
    server.faults.add(MALFORMED, times=5)
    backend = TGIBackend(urls=server.url, retry=RetryPolicy(max_attempts=5, initial_backoff=0.01, max_backoff=0.02))
    from datasets import Dataset

    evolve = EvolInstruct(backend=backend, sampling=SHORT)
    out = Dataset.from_list(rows(1)).map(evolve, batched=True, with_indices=True)
    assert out["evol_status"] == ["failed"] and "empty" in out["evol_reason"][0]
    out = Dataset.from_list(rows(1)).map(evolve, batched=True, with_indices=True)
    assert out["evol_status"] == ["failed"] and "not valid JSON" in out["evol_reason"][0] and "5 attempt(s)" in out["evol_reason"][0]


def test_server_dying_mid_run_fails_the_remaining_rows_quickly_and_loses_nothing(tmp_path):
    from hfevol.cache import CachedBackend

    policy = RetryPolicy(max_attempts=50, max_total_seconds=2.0, timeout=2.0, initial_backoff=0.05, max_backoff=0.2)
    srv = TGITestServer(latency=0.05, capacity=2).start()
    backend = TGIBackend(urls=srv.url, max_in_flight=2, retry=policy)
    cached = CachedBackend(backend, str(tmp_path / "c.sqlite"))
    requests = _requests(60)

    async def run():
        task = asyncio.gather(*(cached.agenerate(r) for r in requests))
        try:
            await wait_until(lambda: len(srv.generations()) >= 10, timeout=60, what="10 answered requests")
        finally:
            srv.stop()
        return await task

    started = time.monotonic()
    results = asyncio.run(run())
    done = [r for r in results if r.ok]
    assert 10 <= len(done) < 60
    assert all(("connect" in r.error or "dropped" in r.error or "no endpoint" in r.error) for r in results if not r.ok)
    assert time.monotonic() - started < 15  # the breaker fails the queued rows at once after one budget
    assert backend.stats.snapshot()["failures"]["connection"] == 60 - len(done)
    assert len(cached.cache) == len(done)

    with TGITestServer() as restarted:  # the server comes back (on another port): only the failed rows are sent
        again = CachedBackend(TGIBackend(urls=restarted.url, retry=FAST), str(tmp_path / "c.sqlite")).generate(requests)
        assert all(r.ok for r in again) and len(restarted.generations()) == 60 - len(done)
    assert [r.text for r in again] == [f"Rewritten ({i}): question {i}" for i in range(60)]
