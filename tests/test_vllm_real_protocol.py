"""The stand-in (``VLLMTestServer``) and a real vLLM answer the same requests alike, so the fast tests stay true.

Each request goes to both: the real server of the session (``vllm_server``, test_vllm_real.py)
and the stand-in with the same model behind it (``ModelEngine``) and the same
``max_model_len``. They must agree on the status, the refused parameter, the shape of the
answer, the tokens counted and the prompt log-probabilities.
"""

from __future__ import annotations

import httpx2
import pytest

from hfevol.testing import ModelEngine, VLLMTestServer

pytestmark = [pytest.mark.vllm, pytest.mark.integration]

WORD = 905  # " world": any token repeats into a prompt of a chosen length
CASES = {  # each body for a context of n tokens (the server's max_model_len)
    "fits exactly": ("/v1/completions", lambda n: {"prompt": [WORD] * (n - 1), "max_tokens": 1}),
    "max_tokens cut to the context left": ("/v1/completions", lambda n: {"prompt": [WORD] * (n - 4), "max_tokens": 50}),
    "prompt fills the context": ("/v1/completions", lambda n: {"prompt": [WORD] * n, "max_tokens": 1}),
    "prompt over the context": ("/v1/completions", lambda n: {"prompt": [WORD] * (n + 1), "max_tokens": 1}),
    "max_tokens over max_model_len": ("/v1/completions", lambda n: {"prompt": "hi", "max_tokens": n + 1}),
    "chat over the context": ("/v1/chat/completions", lambda n: {"messages": [{"role": "user", "content": "word " * (n + 50)}], "max_tokens": 4}),
    "too many prompt_logprobs": ("/v1/completions", lambda n: {"prompt": [1, 2], "max_tokens": 1, "prompt_logprobs": 50}),
}


@pytest.fixture(scope="module")
def both(vllm_server, embedded):
    with VLLMTestServer(ModelEngine(), max_model_len=vllm_server.max_model_len) as standin:
        yield {"real": (vllm_server.url, vllm_server.model), "stand-in": (standin.url, standin.engine.model_id)}


def _post(target, route, body):
    url, model = target
    return httpx2.post(url + route, json={"model": model, "temperature": 0, **body}, timeout=600)


@pytest.mark.parametrize("case", list(CASES))
def test_status_refused_parameter_and_counts_agree(both, vllm_server, case):
    route, make = CASES[case]
    body = make(vllm_server.max_model_len)
    answers = {name: _post(target, route, body) for name, target in both.items()}
    real, standin = answers["real"], answers["stand-in"]
    assert real.status_code == standin.status_code, (case, real.text[:300], standin.text[:300])
    if real.status_code != 200:
        errors = {name: a.json()["error"] for name, a in answers.items()}
        assert set(errors["real"]) == set(errors["stand-in"]) and errors["real"]["param"] == errors["stand-in"]["param"], errors
        assert errors["real"]["type"] == errors["stand-in"]["type"] == "BadRequestError"
        return
    usage = {name: a.json()["usage"] for name, a in answers.items()}
    assert {k: usage["real"][k] for k in ("prompt_tokens", "completion_tokens")} == {k: usage["stand-in"][k] for k in ("prompt_tokens", "completion_tokens")}
    assert real.json()["choices"][0]["finish_reason"] == standin.json()["choices"][0]["finish_reason"]


def test_tokenize_models_and_prompt_logprobs_agree(both):
    text = "Hfevol compares the stand-in with a real vLLM server."
    tokenized = {name: httpx2.post(url + "/tokenize", json={"model": model, "prompt": text}).json() for name, (url, model) in both.items()}
    assert set(tokenized["real"]) == set(tokenized["stand-in"])
    assert tokenized["real"]["tokens"] == tokenized["stand-in"]["tokens"] and tokenized["real"]["max_model_len"] == tokenized["stand-in"]["max_model_len"]
    cards = {name: httpx2.get(url + "/v1/models").json()["data"][0] for name, (url, _) in both.items()}
    assert {"id", "root", "max_model_len", "owned_by"} <= set(cards["real"]) & set(cards["stand-in"])

    ids = tokenized["real"]["tokens"]
    answers = {name: _post(target, "/v1/completions", {"prompt": ids, "max_tokens": 1, "prompt_logprobs": 1}).json() for name, target in both.items()}
    real, standin = (answers[n]["choices"][0]["prompt_logprobs"] for n in ("real", "stand-in"))
    assert real[0] is None and standin[0] is None and len(real) == len(standin) == len(ids)
    for k in range(1, len(ids)):
        sent = str(ids[k])
        assert set(real[k][sent]) == set(standin[k][sent]) == {"logprob", "rank", "decoded_token"}
        assert real[k][sent]["logprob"] == pytest.approx(standin[k][sent]["logprob"], abs=1e-3, rel=1e-4)
        assert real[k][sent]["rank"] == standin[k][sent]["rank"] and real[k][sent]["decoded_token"] == standin[k][sent]["decoded_token"]
        # the top-ranked token is listed beside the prompt token
        assert set(real[k]) == set(standin[k]), k
