"""The vLLM flavour of the test server: vLLM's shapes, status codes and strictness (echo engine, raw HTTP)."""

from __future__ import annotations

import httpx2
import pytest

from hfevol.testing import VLLMTestServer

pytestmark = pytest.mark.integration

MODEL = "hfevol/echo-model"


def _word_ids(text: str) -> list[int]:
    """The echo engine's made-up ids, computed here by hand: byte sum modulo 49152."""
    return [sum(w.encode()) % 49152 for w in text.split()]


@pytest.fixture(scope="module")
def srv():
    with VLLMTestServer(max_model_len=12) as server:
        yield server


def test_models_tokenize_and_no_tgi_routes(srv):
    card = httpx2.get(srv.url + "/v1/models").json()["data"][0]
    assert card["id"] == card["root"] == MODEL and card["max_model_len"] == 12 and card["owned_by"] == "vllm"
    out = httpx2.post(srv.url + "/tokenize", json={"model": MODEL, "prompt": "one two three", "add_special_tokens": True}).json()
    assert out == {"count": 3, "max_model_len": 12, "tokens": _word_ids("one two three"), "token_strs": None}
    assert httpx2.get(srv.url + "/info").status_code == 404  # vLLM has no /info ...
    assert httpx2.post(srv.url + "/generate", json={"inputs": "a"}).status_code == 404  # ... and no /generate


def test_a_token_id_prompt_is_taken_as_it_is(srv):
    ids = _word_ids("alpha beta gamma")
    out = httpx2.post(srv.url + "/v1/completions", json={"model": MODEL, "prompt": ids, "max_tokens": 2}).json()
    choice = out["choices"][0]
    assert out["object"] == "text_completion" and out["usage"]["prompt_tokens"] == 3 and out["usage"]["completion_tokens"] == 2
    assert choice["prompt_logprobs"] is None and choice["finish_reason"] == "length"  # not asked for


@pytest.mark.parametrize(
    "route, body, message",
    [
        ("/v1/completions", {"prompt": {"text": "a"}}, "`prompt` must be a non-empty string or a non-empty list of token ids"),
        ("/v1/completions", {"prompt": [3, -1]}, "list of token ids (integers >= 0)"),
        ("/v1/completions", {"prompt": [[1, 2], [3]]}, "one prompt per request"),
        ("/v1/completions", {"prompt": []}, "non-empty list"),
        ("/v1/completions", {"prompt": [49152]}, "token id 49152 is outside the vocabulary"),
        ("/v1/completions", {"prompt": [1, 2], "prompt_logprobs": "1"}, "`prompt_logprobs` must be an integer from 0 to 20"),
        ("/v1/completions", {"prompt": [1, 2], "prompt_logprobs": 21}, "`prompt_logprobs` must be an integer from 0 to 20"),
        ("/v1/completions", {"prompt": [1, 2], "max_tokens": 0}, "`max_tokens` must be an integer >= 1"),
        (
            "/v1/completions",
            {"prompt": list(range(1, 14)), "max_tokens": 1},
            "maximum context length is 12 tokens. However, your prompt contains at least 13 input tokens",
        ),
        ("/v1/completions", {"prompt": list(range(1, 13)), "max_tokens": 1}, "max_tokens must be at least 1, got 0"),
        ("/v1/completions", {"prompt": [1, 2], "max_tokens": 13}, "max_tokens=13 cannot be greater than max_model_len=12"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": " ".join(["w"] * 13)}], "max_tokens": 1}, "your prompt contains at least"),
        ("/v1/completions", {"prompt": [1, 2], "prompt_logprobs": 1, "max_tokens": 1}, "the echo engine has no prompt log-probabilities"),
        ("/v1/completions", {"prompt": [1, 2], "max_tokens": 1, "stream": True}, "streaming is not served"),
        ("/tokenize", {"prompt": 5}, "`prompt` must be a string"),
        ("/tokenize", {"prompt": "a", "add_special_tokens": "yes"}, "`add_special_tokens` must be a boolean"),
        ("/tokenize", {"messages": [{"role": "user", "content": "a"}]}, "not `messages`"),
    ],
)
def test_refused_requests_have_vllms_error_shape(srv, route, body, message):
    response = httpx2.post(srv.url + route, json={"model": MODEL, **body})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "BadRequestError" and error["code"] == 400 and message in error["message"], error


def test_max_tokens_is_cut_to_the_context_left_as_vllm_does(srv):
    """vLLM 0.32 answers a prompt of 11 tokens with max_tokens 5 in a 12-token context: one token, no error."""
    out = httpx2.post(srv.url + "/v1/completions", json={"model": MODEL, "prompt": list(range(1, 12)), "max_tokens": 5}).json()
    assert out["usage"] == {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12}
    assert out["choices"][0]["finish_reason"] == "length"


def test_unknown_model_and_bad_json(srv):
    response = httpx2.post(srv.url + "/v1/completions", json={"model": "other/model", "prompt": [1]})
    assert response.status_code == 404 and response.json()["error"] == {
        "message": "The model `other/model` does not exist.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }
    response = httpx2.post(srv.url + "/tokenize", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == 400
