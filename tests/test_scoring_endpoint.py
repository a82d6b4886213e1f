"""Scoring through TGI's prefill log-probs: the real embedded model behind the TGI test server, against local scoring (vLLM: test_scoring_vllm.py)."""

from __future__ import annotations

import asyncio
import json
import math
import re

import pytest

from hfevol.backends.retry import RetryPolicy
from hfevol.backends.tgi import TGIBackend
from hfevol.errors import ConfigError, EndpointError, TokenMismatchError
from hfevol.scoring import Score
from hfevol.scoring.endpoint import EndpointScore
from hfevol.testing import ModelEngine, TGITestServer

ROWS = [0, 1, 4, 5, 9, 30]  # rows 4, 5 and 9 have an input
PATIENT = RetryPolicy(max_attempts=2, max_total_seconds=600.0, timeout=240.0)
"""A real model on a shared CPU answers slowly; these tests are about values, not retries."""


def test_chat_mode_is_refused_up_front():
    with pytest.raises(ConfigError, match="mode='chat' is not yet supported through an endpoint"):
        EndpointScore(endpoint="http://127.0.0.1:9", mode="chat")


@pytest.fixture(scope="module")
def engine(embedded):
    return ModelEngine()


@pytest.fixture(scope="module")
def sample():
    from hfevol.io import builtin_sample

    return builtin_sample().select(ROWS)


def _backend(url: str) -> TGIBackend:
    return TGIBackend(urls=url, retry=PATIENT)


@pytest.mark.slow
@pytest.mark.integration
def test_endpoint_scores_match_local_scoring(engine, sample):
    batch = sample.to_dict()
    batch["output"][5] = ""  # an undefined row keeps its status through both paths
    local = Score(model="embedded", device="cpu", dtype="float32")(batch, list(range(len(ROWS))))
    with TGITestServer(engine, prefill_logprobs=True) as srv:
        remote = EndpointScore(endpoint=_backend(srv.url))(batch, list(range(len(ROWS))))
        prefills = [r for r in srv.generations() if r.body["parameters"].get("decoder_input_details")]
    assert local["score_status"] == remote["score_status"] == ["ok"] * 5 + ["undefined"]
    assert remote["score_reason"][5] == "empty answer"
    for column in ("tokens_q", "tokens_a_given_q", "tokens_a"):
        assert remote[column] == local[column]
    for column in ("loss_q", "loss_a_given_q", "loss_a", "ifd", "ic_ifd"):
        for got, want in zip(remote[column][:5], local[column][:5]):
            assert math.isclose(got, want, rel_tol=1e-4), (column, got, want)
    # one check request, then the conditioned text and the answer of each scored row
    sent = sorted(r.body["inputs"] for r in prefills[1:])
    expected = sorted(t for i in range(5) for t in (_question(batch, i) + "\n" + batch["output"][i], batch["output"][i]))
    assert sent == expected


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
    with TGITestServer(_ShortTokenizeEngine(), prefill_logprobs=True) as srv:
        with pytest.raises(TokenMismatchError, match=r"row 7: .* scored other tokens than its /tokenize gave"):
            asyncio.run(EndpointScore(endpoint=_backend(srv.url)).acall(sample.select([0]).to_dict(), [7]))


@pytest.mark.slow
@pytest.mark.integration
def test_cli_scores_through_the_endpoint(engine, tmp_path, capsys):
    from hfevol.cli import main

    seeds = tmp_path / "seeds.jsonl"
    rows = [{"instruction": "Add the numbers.", "input": "2 and 3", "output": "The sum is 5."}, {"instruction": "Name a colour.", "input": "", "output": "Red."}]
    seeds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "scored"
    with TGITestServer(engine, prefill_logprobs=True) as srv:
        assert main(["score", "--dataset", str(seeds), "--out", str(out), "--endpoint", srv.url, "--request-timeout", "240"]) == 0
    printed = capsys.readouterr().out
    assert f"through {srv.url}" in printed and re.search(r"\bok +2\n", printed)
    stage = json.loads((out / "hfevol_run.json").read_text())["stages"][0]
    assert stage["model"]["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and stage["logprobs"].startswith("tgi prefill")
