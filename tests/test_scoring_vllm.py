"""Scoring through vLLM's /tokenize and prompt_logprobs, against the vLLM flavour of the test server.

A made-up engine sets the log-probabilities by hand, so every loss here can be computed on
paper. The real embedded model behind the server, against local scoring: test_scoring_endpoint.py.
"""

from __future__ import annotations

import json

import pytest
from _servers import FAST

from hfevol.backends.openai import OpenAIBackend
from hfevol.errors import ConfigError, EndpointError
from hfevol.scoring.endpoint import EndpointScore
from hfevol.testing import EchoEngine, TGITestServer, VLLMTestServer

pytestmark = pytest.mark.integration


def _backend(url: str) -> OpenAIBackend:
    return OpenAIBackend(urls=url, retry=FAST)


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


def test_a_question_that_alone_fills_max_length_is_decided_without_a_request():
    rows = {"instruction": ["a b", "q r s t u"], "input": ["", ""], "output": ["c d", "v"]}
    with VLLMTestServer(_HandSetEngine()) as srv:
        out = EndpointScore(endpoint=_backend(srv.url), max_length=4)(rows, [0, 1])
        sent = [len(r.body["prompt"]) for r in srv.generations() if isinstance(r.body["prompt"], list)]
    assert out["score_status"] == ["ok", "undefined"] and out["score_truncated"] == [False, True]
    assert out["score_reason"][1] == "the question alone fills the 4-token limit (5 tokens), so L(A|Q) has no scored tokens; not run through the model"
    assert sorted(sent) == [2, 4, 8]  # the start-up check (8 words), then row 0's two sequences; nothing for row 1


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
    assert stage["logprobs"] == "vllm prompt_logprobs" and stage["backend"]["kind"] == "openai" and stage["backend"]["served_model"]
    assert stage["backend"]["details"]["server"]["max_model_len"] == 8192
    assert json.loads((out / "hfevol_run.json").read_text())["summary"]["mean_ic_ifd"] == pytest.approx(4.0)


def test_cli_explains_a_tgi_server_named_as_openai(tmp_path, capsys):
    from hfevol.cli import main

    with TGITestServer() as srv:  # serves /v1/models, but its /tokenize takes TGI's {"inputs"}
        code = main(["score", "--dataset", str(_seeds(tmp_path)), "--out", str(tmp_path / "o"), "--endpoint", srv.url, "--endpoint-api", "openai"])
    err = capsys.readouterr().err
    assert code == 2 and "has no /tokenize route that takes vLLM's request" in err and "--endpoint-api tgi" in err
