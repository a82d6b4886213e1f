"""Scoring through an endpoint against local scoring: the real embedded model behind the TGI test server (prefill
log-probs) and its vLLM flavour (prompt_logprobs). Protocol details with hand-set values: test_scoring_vllm.py."""

from __future__ import annotations

import asyncio
import json
import math
import re

import httpx2
import pytest

from hfevol.backends.openai import OpenAIBackend
from hfevol.backends.retry import RetryPolicy
from hfevol.backends.tgi import TGIBackend
from hfevol.errors import ConfigError, EndpointError, TokenMismatchError
from hfevol.scoring import Score
from hfevol.scoring.endpoint import EndpointScore
from hfevol.testing import ModelEngine, TGITestServer, VLLMTestServer

ROWS = [0, 1, 4, 5, 9, 30]  # rows 4, 5 and 9 have an input
PATIENT = RetryPolicy(max_attempts=2, max_total_seconds=600.0, timeout=240.0)
"""A real model on a shared CPU answers slowly; these tests are about values, not retries."""


def test_chat_mode_through_tgi_is_refused_up_front():
    with pytest.raises(ConfigError, match="mode='chat' through an endpoint needs vLLM") as info:
        EndpointScore(endpoint="http://127.0.0.1:9", mode="chat")
    assert "OpenAIBackend" in info.value.hint


@pytest.fixture(scope="module")
def engine(embedded):
    return ModelEngine()


@pytest.fixture(scope="module")
def sample():
    from hfevol.io import builtin_sample

    return builtin_sample().select(ROWS)


def _backend(url: str) -> TGIBackend:
    return TGIBackend(urls=url, retry=PATIENT)


def _vllm(url: str) -> OpenAIBackend:
    return OpenAIBackend(urls=url, retry=PATIENT)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("flavour", ["tgi", "vllm"])
def test_endpoint_scores_match_local_scoring(engine, sample, flavour):
    batch = sample.to_dict()
    batch["output"][5] = ""  # an undefined row keeps its status through both paths
    local = Score(model="embedded", device="cpu", dtype="float32")(batch, list(range(len(ROWS))))
    server = TGITestServer(engine, prefill_logprobs=True) if flavour == "tgi" else VLLMTestServer(engine)
    with server as srv:
        remote = EndpointScore(endpoint=(_backend if flavour == "tgi" else _vllm)(srv.url))(batch, list(range(len(ROWS))))
        requests = srv.generations()
    assert local["score_status"] == remote["score_status"] == ["ok"] * 5 + ["undefined"]
    assert remote["score_reason"][5] == "empty answer"
    for column in ("tokens_q", "tokens_a_given_q", "tokens_a"):
        assert remote[column] == local[column]
    for column in ("loss_q", "loss_a_given_q", "loss_a", "ifd", "ic_ifd"):
        for got, want in zip(remote[column][:5], local[column][:5]):
            assert math.isclose(got, want, rel_tol=1e-4), (column, got, want)
    # one check request, then the conditioned text and the answer of each scored row: TGI gets the
    # texts; vLLM gets their ids, as the model's own tokenizer gives them
    texts = [t for i in range(5) for t in (_question(batch, i) + "\n" + batch["output"][i], batch["output"][i])]
    if flavour == "tgi":
        sent, expected = [r.body["inputs"] for r in requests if r.body["parameters"].get("decoder_input_details")], texts
    else:
        sent, expected = [r.body["prompt"] for r in requests], [engine.loaded.tokenizer(t).input_ids for t in texts]
    assert sorted(sent[1:]) == sorted(expected)


def _question(batch, i):
    return batch["instruction"][i] + ("\n" + batch["input"][i] if batch["input"][i] else "")


@pytest.mark.slow
@pytest.mark.integration
def test_acall_through_datasets_map_and_truncation_match_local(engine, sample):
    local = sample.map(Score(model="embedded", device="cpu", dtype="float32", max_length=24), batched=True)
    with TGITestServer(engine, prefill_logprobs=True) as srv:
        remote = sample.map(EndpointScore(endpoint=_backend(srv.url), max_length=24).acall, batched=True, batch_size=3)
    assert remote["score_truncated"] == local["score_truncated"] and any(local["score_truncated"])
    assert remote["tokens_a_given_q"] == local["tokens_a_given_q"]
    for got, want in zip(remote["ic_ifd"], local["ic_ifd"]):
        assert math.isclose(got, want, rel_tol=1e-4) or (math.isnan(got) and math.isnan(want))


@pytest.mark.slow
@pytest.mark.integration
def test_a_server_without_prefill_logprobs_fails_before_any_row(engine, sample):
    with TGITestServer(engine) as srv:  # like TGI 3 without --enable-prefill-logprobs
        with pytest.raises(EndpointError, match="no prompt log-probabilities") as info:
            EndpointScore(endpoint=_backend(srv.url))(sample.to_dict())
        assert "--enable-prefill-logprobs" in str(info.value)
        assert len(srv.generations()) == 1  # the start-up check only


class _ShortTokenizeEngine(ModelEngine):
    """``/tokenize`` drops the last token, so it disagrees with the prefill of ``/generate``."""

    def tokenize(self, text, add_special_tokens=True):
        return super().tokenize(text, add_special_tokens)[:-1]


@pytest.mark.slow
@pytest.mark.integration
def test_a_token_id_mismatch_names_the_row(embedded, sample):
    with (
        TGITestServer(_ShortTokenizeEngine(), prefill_logprobs=True) as srv,
        pytest.raises(TokenMismatchError, match=r"row 7: .* scored other tokens than its /tokenize gave"),
    ):
        asyncio.run(EndpointScore(endpoint=_backend(srv.url)).acall(sample.select([0]).to_dict(), [7]))


@pytest.mark.slow
@pytest.mark.integration
def test_cli_scores_through_the_endpoint(engine, tmp_path, capsys):
    from hfevol.cli import main

    seeds = tmp_path / "seeds.jsonl"
    rows = [
        {"instruction": "Add the numbers.", "input": "2 and 3", "output": "The sum is 5."},
        {"instruction": "Name a colour.", "input": "", "output": "Red."},
    ]
    seeds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "scored"
    with TGITestServer(engine, prefill_logprobs=True) as srv:
        assert main(["score", "--dataset", str(seeds), "--out", str(out), "--endpoint", srv.url, "--request-timeout", "240"]) == 0
    printed = capsys.readouterr().out
    assert f"through {srv.url}" in printed and re.search(r"\bok +2\n", printed)
    stage = json.loads((out / "hfevol_run.json").read_text())["stages"][0]
    assert (
        stage["backend"]["served_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
        and stage["backend"]["kind"] == "tgi"
        and stage["logprobs"].startswith("tgi prefill")
    )


# -- vLLM: /tokenize ids as the prompt, prompt_logprobs ------------------------------------


@pytest.mark.slow
@pytest.mark.integration
def test_vllm_acall_through_datasets_map_with_truncation_matches_local(engine, sample):
    local = sample.map(Score(model="embedded", device="cpu", dtype="float32", max_length=24), batched=True)
    with VLLMTestServer(engine, max_model_len=25) as srv:  # every row is longer; cut to 24 tokens, each fits
        remote = sample.map(EndpointScore(endpoint=_vllm(srv.url), max_length=24).acall, batched=True, batch_size=3)
    assert remote["score_status"] == local["score_status"] and remote["score_truncated"] == local["score_truncated"]
    assert all(local["score_truncated"]) and remote["tokens_a_given_q"] == local["tokens_a_given_q"]
    for got, want in zip(remote["ic_ifd"], local["ic_ifd"]):
        assert math.isclose(got, want, rel_tol=1e-4) or (math.isnan(got) and math.isnan(want))


@pytest.mark.slow
@pytest.mark.integration
def test_vllm_server_prompt_logprobs_match_an_independent_prefix_by_prefix_computation(engine):
    import torch

    ids = engine.loaded.tokenizer("The capital of France is Paris. The capital of Italy is Rome.").input_ids
    with VLLMTestServer(engine) as srv:
        served = asyncio.run(_vllm(srv.url).aprompt_logprobs(ids))
        raw = httpx2.post(srv.url + "/v1/completions", json={"prompt": ids, "max_tokens": 1, "prompt_logprobs": 1}, timeout=240).json()
    positions = raw["choices"][0]["prompt_logprobs"]
    assert [t for t, _, _ in served] == ids and served[0][2] is None and positions[0] is None
    # Independent procedure: score token k from a forward pass over ids[:k] alone.
    for k in range(1, len(ids)):
        with torch.inference_mode():
            logp = torch.log_softmax(engine.loaded.model(torch.tensor([ids[:k]])).logits[0, -1].double(), dim=-1)
        assert math.isclose(served[k][2], float(logp[ids[k]]), abs_tol=2e-4)
        top = int(logp.argmax())  # vLLM lists the top token (rank 1) and the prompt token
        assert positions[k][str(top)]["rank"] == 1 and set(positions[k]) == {str(top), str(ids[k])}


class _BosEngine(ModelEngine):
    """Scores a token-id prompt with one more token in front, as a server that adds a BOS token to it would."""

    def prompt_logprobs(self, ids, top_n):
        return super().prompt_logprobs([0, *ids], top_n)


@pytest.mark.slow
@pytest.mark.integration
def test_vllm_token_mismatch_names_the_row(embedded, sample):
    with VLLMTestServer(_BosEngine()) as srv, pytest.raises(TokenMismatchError, match=r"row 7: .* scored other tokens than its /tokenize gave"):
        asyncio.run(EndpointScore(endpoint=_vllm(srv.url)).acall(sample.select([0]).to_dict(), [7]))


@pytest.mark.slow
@pytest.mark.integration
def test_chat_mode_through_vllm_matches_local_chat_scoring(engine, sample):
    batch = sample.to_dict()
    local = Score(model="embedded", device="cpu", dtype="float32", mode="chat")(batch, list(range(len(ROWS))))
    with VLLMTestServer(engine) as srv:
        score = EndpointScore(endpoint=OpenAIBackend(urls=srv.url, retry=PATIENT, tokenizer="embedded"), mode="chat")
        remote = score(batch, list(range(len(ROWS))))
        assert score.metadata()["tokenizer"] == "embedded" and score.metadata()["mode"] == "chat"
    assert remote["score_status"] == local["score_status"] == ["ok"] * len(ROWS)
    for column in ("tokens_q", "tokens_a_given_q", "tokens_a"):
        assert remote[column] == local[column]
    for column in ("loss_q", "loss_a_given_q", "loss_a", "ifd", "ic_ifd"):
        for got, want in zip(remote[column], local[column]):
            assert math.isclose(got, want, rel_tol=1e-4), (column, got, want)


@pytest.mark.slow
@pytest.mark.integration
def test_chat_mode_refuses_a_tokenizer_that_is_not_the_served_models(embedded, sample):
    with VLLMTestServer(_ShortTokenizeEngine()) as srv:  # its /tokenize disagrees with the local tokenizer
        score = EndpointScore(endpoint=OpenAIBackend(urls=srv.url, retry=PATIENT, tokenizer="embedded"), mode="chat")
        with pytest.raises(ConfigError, match="is not the served model's tokenizer"):
            score(sample.select([0]).to_dict(), [0])
        assert len(srv.generations()) == 1  # the start-up check's request only: no row was sent
