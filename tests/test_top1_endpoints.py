"""Top-1 probability through the TGI and vLLM test servers (hand-set log-probs), the parsers, the
start-up check of a server without log-probs, and the request cache keeping what was recorded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from _servers import FAST, rows

from hfevol.backends import GenerationRequest, SamplingParams
from hfevol.backends.openai import OpenAIBackend
from hfevol.backends.tgi import TGIBackend
from hfevol.cache import RequestCache
from hfevol.cli import main
from hfevol.testing import TGITestServer, VLLMTestServer
from hfevol.testing.engines import EchoEngine, Generation
from hfevol.top1 import PROBE_PROMPT

EMITTED = (-0.1, -1.5, -0.7, -2.0, -0.3, -0.9)
"""Hand-set log-probability of the emitted token at positions 0, 1, 2, ... (cycled)."""
BEST = (-0.1, -0.2, -0.7, -0.4, -0.3, -0.05)
"""Hand-set log-probability of the likeliest token there (>= the emitted one)."""
SAMPLED = SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=40)
GREEDY = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=40)


class HandSetEngine(EchoEngine):
    """The echo model, whose tokens carry the hand-set log-probabilities above."""

    def generate(self, prompt, *, max_new_tokens, temperature, top_p, seed, stop, top_n):
        gen = super().generate(prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed, stop=stop, top_n=top_n)
        tokens = [(i, w, EMITTED[t % len(EMITTED)]) for t, (i, w, _) in enumerate(gen.tokens)]
        top = [[(7, "best", BEST[t % len(BEST)])] * top_n for t in range(len(tokens))] if top_n else None
        return Generation(gen.text, tokens, top, gen.finish_reason, gen.prompt_tokens)


def _expected(n: int, *, with_alternatives: bool) -> list[float]:
    source = BEST if with_alternatives else EMITTED
    return [math.exp(source[t % len(source)]) for t in range(n)]


ROUTES = [
    (TGITestServer, TGIBackend, "chat", SAMPLED, True),
    (TGITestServer, TGIBackend, "chat", GREEDY, True),
    (TGITestServer, TGIBackend, "generate", SAMPLED, True),  # top_n_tokens=1 is sent
    (TGITestServer, TGIBackend, "generate", GREEDY, False),  # the emitted token's log-prob is the top-1
    (VLLMTestServer, OpenAIBackend, "chat", SAMPLED, True),
    (VLLMTestServer, OpenAIBackend, "completions", SAMPLED, True),
]


@pytest.mark.parametrize(("server_cls", "backend_cls", "route", "params", "alternatives"), ROUTES)
def test_parsed_top1_equals_what_the_server_sent(server_cls, backend_cls, route, params, alternatives):
    with server_cls(HandSetEngine()) as srv:
        backend = backend_cls(urls=srv.url, route=route, retry=FAST, tokenizer="embedded")
        requests = [GenerationRequest.chat(f"Explain topic {i}.", params=params, seed=i, top1=True) for i in range(3)]
        results = backend.generate(requests)
        for result in results:
            n = len(result.text.split(" "))
            assert result.top1 == pytest.approx(_expected(n, with_alternatives=alternatives), rel=1e-12)
        # off by default: the same requests without top1 ask for no log-probs and get no values
        sent = len(srv.log)
        plain = backend.generate([GenerationRequest.chat("Explain topic 0.", params=params, seed=0)])
        assert plain[0].top1 is None and plain[0].text == results[0].text
        body = srv.log[sent:][-1].body
        asked = body.get("parameters", body)
        assert not asked.get("logprobs") and not asked.get("top_logprobs") and not asked.get("top_n_tokens")


def test_parsers_take_the_largest_and_leave_out_special_tokens():
    tgi = TGIBackend(urls="http://127.0.0.1:9", route="chat")
    request = GenerationRequest.chat("x", params=SAMPLED, top1=True)
    chat = {"choices": [{"message": {"content": "a b"}, "finish_reason": "stop", "logprobs": {"content": [
        {"token": "a", "logprob": -1.0, "top_logprobs": [{"token": "c", "logprob": -2.0}, {"token": "d", "logprob": -0.4}]},  # largest is not first
        {"token": "b", "logprob": -0.25, "top_logprobs": []},
    ]}}]}  # fmt: skip
    assert tgi.parse(chat, request, url="u").top1 == pytest.approx((math.exp(-0.4), math.exp(-0.25)))
    assert tgi.parse(chat, GenerationRequest.chat("x", params=SAMPLED), url="u").top1 is None
    generate = {"generated_text": "a b", "details": {"finish_reason": "eos_token", "generated_tokens": 3, "tokens": [
        {"id": 1, "text": "a", "logprob": -0.5, "special": False},
        {"id": 2, "text": "b", "logprob": -1.5, "special": False},
        {"id": 0, "text": "</s>", "logprob": -0.01, "special": True},
    ], "top_tokens": [[{"id": 1, "text": "a", "logprob": -0.5}], [{"id": 3, "text": "z", "logprob": -0.3}], [{"id": 0, "text": "</s>", "logprob": -0.01}]]}}  # fmt: skip
    tgi_generate = TGIBackend(urls="http://127.0.0.1:9", route="generate", tokenizer="embedded")
    assert tgi_generate.parse(generate, request, url="u").top1 == pytest.approx((math.exp(-0.5), math.exp(-0.3)))
    completion = {"choices": [{"text": "a b", "finish_reason": "stop", "logprobs": {
        "token_logprobs": [-0.7, -2.0], "top_logprobs": [{"a": -0.7}, {"q": -0.1, "b": -2.0}]}}]}  # fmt: skip
    openai = OpenAIBackend(urls="http://127.0.0.1:9", route="completions", tokenizer="embedded")
    assert openai.parse(completion, request, url="u").top1 == pytest.approx((math.exp(-0.7), math.exp(-0.1)))
    no_logprobs = {"choices": [{"message": {"content": "a"}, "finish_reason": "stop", "logprobs": None}]}
    assert tgi.parse(no_logprobs, request, url="u").top1 is None


class NoLogprobsServer(VLLMTestServer):
    """An OpenAI-compatible server that ignores ``logprobs`` (as some do)."""

    def _chat(self, body, fault):
        status, out = super()._chat(body, fault)
        out["choices"][0]["logprobs"] = None
        return status, out


def _seeds(tmp_path: Path, n: int) -> str:
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows(n)))
    return str(path)


def _row_requests(srv: TGITestServer, since: int = 0) -> list:
    """Generation requests for rows (not the start-up probe), from log entry ``since`` on."""
    return [r for r in srv.log[since:] if r.prompt_key is not None and PROBE_PROMPT not in r.prompt_key[0]]


def _generations(srv: TGITestServer, since: int) -> list:
    return [r for r in srv.log[since:] if r.prompt_key is not None]


def test_a_server_without_logprobs_is_named_at_start_up(tmp_path, capsys):
    out = tmp_path / "out"
    with NoLogprobsServer() as srv:
        rc = main(["evolve", "--dataset", _seeds(tmp_path, 3), "--out", str(out), "--endpoint", srv.url, "--endpoint-api", "openai",
                   "--record-top1", "--max-new-tokens", "16", "--max-attempts", "2"])  # fmt: skip
        err = capsys.readouterr().err
        assert rc == 2 and "Traceback" not in err
        line = err[err.index("error: ") :].splitlines()[0]
        assert line == f"error: --record-top1: the openai endpoint {srv.url} returned no log-probabilities for the generated tokens"
        assert _row_requests(srv) == []  # before any row
        assert len(srv.generations()) == 1  # the one-token probe
    assert not (out / "data").exists()


def _evolve(url: str, seeds: str, out: Path, cache: Path, *extra: str) -> None:
    assert main(["evolve", "--dataset", seeds, "--out", str(out), "--endpoint", url, "--cache", str(cache),
                 "--max-new-tokens", "40", "--no-elimination", *extra]) == 0  # fmt: skip


def test_the_request_cache_keeps_top1_and_recomputes_only_what_lacks_it(tmp_path):
    seeds, cache = _seeds(tmp_path, 4), tmp_path / "requests.sqlite"
    with TGITestServer(HandSetEngine()) as srv:
        _evolve(srv.url, seeds, tmp_path / "o1", cache)  # without --record-top1: 4 rows, no log-probs asked
        first = _row_requests(srv)
        assert len(first) == 4 and not any(r.body.get("logprobs") for r in first)
        assert len(RequestCache(cache)) == 4

        mark = len(srv.log)
        _evolve(srv.url, seeds, tmp_path / "o2", cache, "--record-top1", "--limit", "2")  # rows 0-1 lack it: sent again
        second = _row_requests(srv, mark)
        assert {r.prompt_key for r in second} <= {r.prompt_key for r in first}
        assert len(second) == 2 and all(r.body.get("logprobs") and r.body.get("top_logprobs") == 1 for r in second)

        mark = len(srv.log)
        _evolve(srv.url, seeds, tmp_path / "o3", cache, "--record-top1")  # only rows 2-3 lack it now; the probe is cached
        third = _row_requests(srv, mark)
        assert len(third) == 2 and {r.prompt_key for r in third}.isdisjoint({r.prompt_key for r in second})
        assert len(_generations(srv, mark)) == 2  # nothing else: the probe's answer came from the cache

        mark = len(srv.log)
        _evolve(srv.url, seeds, tmp_path / "o4", cache, "--record-top1")
        _evolve(srv.url, seeds, tmp_path / "o5", cache)  # a stored answer with top-1 also answers a request without
        assert _generations(srv, mark) == []  # no generation request at all (only the start-up check's /info)

    from datasets import Dataset

    table = Dataset.from_parquet(str(tmp_path / "o4" / "data" / "round_1" / "train.parquet"))
    for row in table:
        n = len(row["evolved_instruction"].split(" "))
        values = _expected(n, with_alternatives=True)  # chat route, sampled: top_logprobs=1
        assert row["top1_positions"] == n
        assert row["top1_mean_all"] == pytest.approx(sum(values) / n, rel=1e-12)
        assert row["top1_mean_k"] == pytest.approx(sum(values[:5]) / 5, rel=1e-12)
    stage = json.loads((tmp_path / "o4" / "hfevol_run.json").read_text())
    text = json.dumps(stage)
    assert '"distribution": "processed"' in text and '"decoding": "sampled"' in text and '"k": 5' in text
    plain = Dataset.from_parquet(str(tmp_path / "o5" / "data" / "round_1" / "train.parquet"))
    assert "top1_mean_k" not in plain.column_names
