"""Scoring through vLLM's /tokenize and prompt_logprobs, against the vLLM flavour of the test server.

Fast tests use a made-up engine whose log-probabilities are set by hand, so every loss can be
computed on paper; slow tests put the real embedded model behind the server and compare with
local scoring.
"""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from hfevol.backends.openai import OpenAIBackend
from hfevol.backends.retry import RetryPolicy
from hfevol.errors import ConfigError, EndpointError, TokenMismatchError
from hfevol.scoring import Score
from hfevol.scoring.endpoint import EndpointScore
from hfevol.testing import EchoEngine, ModelEngine, TGITestServer, VLLMTestServer

pytestmark = pytest.mark.integration

PATIENT = RetryPolicy(max_attempts=2, max_total_seconds=600.0, timeout=240.0)
"""A real model on a shared CPU answers slowly; these tests are about values, not retries."""


def _backend(url: str) -> OpenAIBackend:
    return OpenAIBackend(urls=url, retry=PATIENT)


class _HandSetEngine(EchoEngine):
    """Whitespace words as tokens; the prompt token at position k has log-probability -k/2.

    Every position also lists a decoy ranked first (log-probability -0.01), as vLLM lists the
    top token beside the prompt token, so reading the wrong entry shows in every value.
    """

    def prompt_logprobs(self, ids, top_n):
        out = [None]
        for k in range(1, len(ids)):
            decoy = (ids[k] + 1) % self.vocab_size
            out.append({decoy: {"logprob": -0.01, "rank": 1, "decoded_token": "decoy"}, ids[k]: {"logprob": -k / 2, "rank": 2, "decoded_token": "word"}})
        return out


# Q = "a b" (2 tokens), A = "c d e"; the echo tokenizer drops the "\n" of Q + "\n" + A, so:
#   L(Q)   = token 1 of "a b c d e"           = 0.5
#   L(A|Q) = tokens 2..4 of it, -(-1, -1.5, -2) / 3 = 1.5
#   L(A)   = tokens 1..2 of "c d e"           = (0.5 + 1.0) / 2 = 0.75
#   IFD = 1.5 / 0.75 = 2, IC-IFD = 1.5 / (0.5 * 0.75) = 4
ROW = {"instruction": ["a b"], "input": [""], "output": ["c d e"]}


def test_spans_and_values_through_vllm_prompt_logprobs():
    with VLLMTestServer(_HandSetEngine()) as srv:
        score = EndpointScore(endpoint=_backend(srv.url))
        out = score(ROW, [0])
        sent = [r.body for r in srv.generations()]
    assert out["score_status"] == ["ok"]
    assert (out["loss_q"][0], out["loss_a_given_q"][0], out["loss_a"][0]) == pytest.approx((0.5, 1.5, 0.75), rel=1e-12)
    assert (out["ifd"][0], out["ic_ifd"][0]) == pytest.approx((2.0, 4.0), rel=1e-12)
    assert score.metadata()["logprobs"] == "vllm prompt_logprobs"
    # after the start-up check: the /tokenize ids themselves, one new token, vLLM's extension
    words = lambda text: [sum(w.encode()) % 49152 for w in text.split()]  # noqa: E731  the echo ids, by hand
    assert sorted(b["prompt"] for b in sent[1:]) == sorted([words("a b c d e"), words("c d e")])
    assert all(b["prompt_logprobs"] == 1 and b["max_tokens"] == 1 and b["model"] == "hfevol/echo-model" for b in sent)


def test_too_long_uses_max_model_len_and_max_length_cuts_first():
    row = {"instruction": ["a b"], "input": [""], "output": ["c d e f g h i j"]}  # 10 tokens with the question
    with VLLMTestServer(_HandSetEngine(), max_model_len=10) as srv:  # a prompt may have 9: one token is generated
        whole = EndpointScore(endpoint=_backend(srv.url))(row, [0])
        cut = EndpointScore(endpoint=_backend(srv.url), max_length=4)(row, [0])
        sent = [len(r.body["prompt"]) for r in srv.generations() if isinstance(r.body["prompt"], list)]
    assert whole["score_status"] == ["too_long"]
    assert whole["score_reason"] == ["10 tokens; the server takes at most 9 (max_model_len less the generated token)"]
    assert cut["score_status"] == ["ok"] and cut["score_truncated"] == [True]
    assert sorted(sent) == [4, 4, 8, 8]  # two start-up checks (8 words), nothing for the long row, 4 + 4 once cut
    # the first 4 tokens: L(A|Q) over positions 2..3, L(A) over positions 1..3 of the answer alone
    assert (cut["loss_a_given_q"][0], cut["loss_a"][0]) == pytest.approx(((1.0 + 1.5) / 2, (0.5 + 1.0 + 1.5) / 3))


def test_a_server_without_prompt_logprobs_fails_before_any_row():
    with VLLMTestServer(_HandSetEngine(), prompt_logprobs=False) as srv:  # an OpenAI server without vLLM's extension
        with pytest.raises(EndpointError, match="no prompt log-probabilities") as info:
            EndpointScore(endpoint=_backend(srv.url))(ROW)
        assert len(srv.generations()) == 1  # the start-up check only
    assert info.value.cause == "unsupported" and srv.url in str(info.value) and "serve the model with vLLM" in str(info.value)


def test_an_endpoint_that_is_not_a_backend_is_refused():
    with pytest.raises(ConfigError, match="a TGIBackend or an OpenAIBackend"):
        EndpointScore(endpoint=None)  # type: ignore[arg-type]


def _seeds(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"instruction": "a b", "input": "", "output": "c d e"}) + "\n")
    return seeds


def test_cli_scores_through_vllm(tmp_path, capsys):
    from hfevol.cli import main

    out = tmp_path / "scored"
    with VLLMTestServer(_HandSetEngine()) as srv:
        assert main(["score", "--dataset", str(_seeds(tmp_path)), "--out", str(out), "--endpoint", srv.url + "/v1", "--endpoint-api", "openai"]) == 0
    assert f"through {srv.url}" in capsys.readouterr().out
    stage = json.loads((out / "hfevol_run.json").read_text())["stages"][0]
    assert stage["logprobs"] == "vllm prompt_logprobs" and stage["endpoint"]["backend"] == "openai"
    assert stage["endpoint"]["server"]["max_model_len"] == 8192
    assert json.loads((out / "hfevol_run.json").read_text())["summary"]["mean_ic_ifd"] == pytest.approx(4.0)


def test_cli_explains_a_tgi_server_named_as_openai(tmp_path, capsys):
    from hfevol.cli import main

    with TGITestServer() as srv:  # serves /v1/models, but its /tokenize takes TGI's {"inputs"}
        code = main(["score", "--dataset", str(_seeds(tmp_path)), "--out", str(tmp_path / "o"), "--endpoint", srv.url, "--endpoint-api", "openai"])
    err = capsys.readouterr().err
    assert code == 2 and "has no /tokenize route that takes vLLM's request" in err and "--endpoint-api tgi" in err


# -- the real model behind the server ----------------------------------------------------------

ROWS = [0, 1, 4, 5, 9, 30]  # rows 4, 5 and 9 have an input


@pytest.fixture(scope="module")
def engine(embedded):
    return ModelEngine()


@pytest.fixture(scope="module")
def sample():
    from hfevol.io import builtin_sample

    return builtin_sample().select(ROWS)


@pytest.mark.slow
def test_vllm_scores_match_local_scoring(engine, sample):
    batch = sample.to_dict()
    batch["output"][5] = ""  # an undefined row keeps its status through both paths
    local = Score(model="embedded", device="cpu", dtype="float32")(batch, list(range(len(ROWS))))
    with VLLMTestServer(engine) as srv:
        remote = EndpointScore(endpoint=_backend(srv.url))(batch, list(range(len(ROWS))))
        prompts = [r.body["prompt"] for r in srv.generations()[1:]]
    assert local["score_status"] == remote["score_status"] == ["ok"] * 5 + ["undefined"]
    for column in ("tokens_q", "tokens_a_given_q", "tokens_a"):
        assert remote[column] == local[column]
    for column in ("loss_q", "loss_a_given_q", "loss_a", "ifd", "ic_ifd"):
        for got, want in zip(remote[column][:5], local[column][:5]):
            assert math.isclose(got, want, rel_tol=1e-4), (column, got, want)
    # the prompts were the tokenizer's ids of the conditioned text and of the answer of each scored row
    tok = engine.loaded.tokenizer
    texts = [t for i in range(5) for t in (_question(batch, i) + "\n" + batch["output"][i], batch["output"][i])]
    assert sorted(prompts) == sorted(tok(t).input_ids for t in texts)


def _question(batch, i):
    return batch["instruction"][i] + ("\n" + batch["input"][i] if batch["input"][i] else "")


@pytest.mark.slow
def test_acall_through_datasets_map_with_truncation_matches_local(engine, sample):
    local = sample.map(Score(model="embedded", device="cpu", dtype="float32", max_length=24), batched=True)
    with VLLMTestServer(engine, max_model_len=25) as srv:  # every row is longer; cut to 24 tokens, each fits
        remote = sample.map(EndpointScore(endpoint=_backend(srv.url), max_length=24).acall, batched=True, batch_size=3)
    assert remote["score_status"] == local["score_status"] and remote["score_truncated"] == local["score_truncated"]
    assert all(local["score_truncated"]) and remote["tokens_a_given_q"] == local["tokens_a_given_q"]
    for got, want in zip(remote["ic_ifd"], local["ic_ifd"]):
        assert math.isclose(got, want, rel_tol=1e-4) or (math.isnan(got) and math.isnan(want))


@pytest.mark.slow
def test_prompt_logprobs_match_an_independent_prefix_by_prefix_computation(engine):
    import httpx2
    import torch

    ids = engine.loaded.tokenizer("The capital of France is Paris. The capital of Italy is Rome.").input_ids
    with VLLMTestServer(engine) as srv:
        served = asyncio.run(_backend(srv.url).aprompt_logprobs(ids))
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
def test_a_token_mismatch_names_the_row(embedded, sample):
    with VLLMTestServer(_BosEngine()) as srv:
        with pytest.raises(TokenMismatchError, match=r"row 7: .* scored other tokens than its /tokenize gave"):
            asyncio.run(EndpointScore(endpoint=_backend(srv.url)).acall(sample.select([0]).to_dict(), [7]))
