"""What the TGI and OpenAI backends send and how they read the answers, with ``httpx2.MockTransport``: no server.

Every expected body below is written out by hand from the servers' APIs (TGI's
``/generate`` and Messages API, OpenAI's chat and completions, vLLM's ``/tokenize`` and
``prompt_logprobs``); the same bodies are what huggingface_hub's ``AsyncInferenceClient``
sent before hfevol sent every route itself. End-to-end behaviour against the test servers
is in test_endpoint_backends.py, test_scoring_endpoint.py and test_scoring_vllm.py.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from _servers import FAST

from hfevol.backends import GenerationRequest, SamplingParams
from hfevol.backends.openai import OpenAIBackend
from hfevol.backends.retry import RetryPolicy
from hfevol.backends.tgi import TGIBackend
from hfevol.backends.transport import HttpCall
from hfevol.errors import AuthenticationError, EndpointError

URL = "http://127.0.0.1:1"
INFO = {"model_id": "org/tgi-model", "model_sha": "abc123", "max_concurrent_requests": 8, "max_input_tokens": 100, "max_total_tokens": 200}
MODELS = {"object": "list", "data": [{"id": "org/vllm-model", "object": "model", "owned_by": "vllm", "root": "/models/m", "max_model_len": 64}]}
SAMPLED = GenerationRequest.chat("q", params=SamplingParams(max_new_tokens=7, temperature=0.7, top_p=0.9, stop=("END",)), seed=3)
GREEDY = GenerationRequest.chat("q", params=SamplingParams(max_new_tokens=5, temperature=0.0))
CHAT_ANSWER = {
    "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "hello"}}],
    "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
}


class FakeServer:
    """Answers by path (a JSON body, a ``Response`` or a function of the request) and keeps every request."""

    def __init__(self, routes: dict[str, Any]) -> None:
        self.routes = routes
        self.sent: list[tuple[str, str, Any, dict[str, str]]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, request.url.path, body, dict(request.headers)))
        answer = self.routes.get(request.url.path, httpx2.Response(404, json={"error": "no such route"}))
        answer = answer(request) if callable(answer) else answer
        return answer if isinstance(answer, httpx2.Response) else httpx2.Response(200, json=answer)

    def bodies(self, path: str) -> list[Any]:
        return [body for _, p, body, _ in self.sent if p == path]

    def factory(self) -> Callable[[], httpx2.MockTransport]:
        return lambda: httpx2.MockTransport(self)


class _Template:
    """A stand-in chat template: the raw-prompt routes render it here, with no tokenizer files."""

    chat_template = "fake"

    def apply_chat_template(self, messages, *, tokenize, add_generation_prompt):
        assert not tokenize and add_generation_prompt
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


@pytest.fixture
def template(monkeypatch):
    import hfevol.models.loading as loading

    monkeypatch.setattr(loading, "load_template_tokenizer", lambda name, **kw: _Template())


def _tgi(server: FakeServer, **kw) -> TGIBackend:
    server.routes.setdefault("/info", INFO)
    server.routes.setdefault("/tokenize", [{"id": 1, "text": "hf", "start": 0, "stop": 2}])
    return TGIBackend(urls=URL, **{"retry": FAST, **kw}, transport_factory=server.factory())


def _openai(server: FakeServer, **kw) -> OpenAIBackend:
    server.routes.setdefault("/v1/models", MODELS)
    return OpenAIBackend(urls=URL, **{"retry": FAST, **kw}, transport_factory=server.factory())


def test_tgi_chat_sends_the_messages_api_body_and_reads_the_answer():
    server = FakeServer({"/v1/chat/completions": CHAT_ANSWER})
    results = _tgi(server).generate([SAMPLED, GREEDY])
    assert server.bodies("/v1/chat/completions") == [
        {
            "model": "org/tgi-model",
            "messages": [{"role": "user", "content": "q"}],
            "max_tokens": 7,
            "temperature": 0.7,
            "seed": 3,
            "top_p": 0.9,
            "stop": ["END"],
            "stream": False,
        },
        {
            "model": "org/tgi-model",
            "messages": [{"role": "user", "content": "q"}],
            "max_tokens": 5,
            "temperature": 0.0,
            "stream": False,
        },  # no seed, top_p, stop
    ]
    assert [(r.text, r.finish_reason, r.prompt_tokens, r.completion_tokens) for r in results] == [("hello", "length", 4, 2)] * 2
    # the start-up check read /info and sent one /tokenize (what finds a bad token)
    assert [(m, p) for m, p, _, _ in server.sent[:2]] == [("GET", "/info"), ("POST", "/tokenize")]


def test_tgi_chat_with_grammar_and_top_n_tokens_reads_the_log_probs():
    answer = {
        "choices": [
            {
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "ab"},
                "logprobs": {
                    "content": [{"token": "a", "logprob": -0.25, "top_logprobs": [{"token": "a", "logprob": -0.25}, {"token": "b", "logprob": -2.0}]}]
                },
            }
        ]
    }
    server = FakeServer({"/v1/chat/completions": answer})
    grammar = {"type": "json", "value": {"type": "object"}}
    (result,) = _tgi(server, top_n_tokens=2, grammar=grammar).generate([GREEDY])
    (body,) = server.bodies("/v1/chat/completions")
    assert (body["logprobs"], body["top_logprobs"], body["response_format"]) == (True, 2, grammar)
    assert result.logprobs == (-0.25,) and result.top_logprobs == ((("a", -0.25), ("b", -2.0)),)
    assert result.prompt_tokens is None and result.finish_reason == "stop"


def test_tgi_generate_renders_the_template_here_and_sends_generate_parameters(template):
    answer = {
        "generated_text": "yes END",
        "details": {
            "finish_reason": "stop_sequence",
            "generated_tokens": 2,
            "tokens": [{"id": 5, "text": "yes", "logprob": -0.5}, {"id": 6, "text": " END", "logprob": -0.1}],
            "top_tokens": [[{"id": 5, "text": "yes", "logprob": -0.5}], [{"id": 6, "text": " END", "logprob": -0.1}]],
        },
    }
    server = FakeServer({"/generate": answer})
    grammar = {"type": "regex", "value": "a+"}
    sampled, greedy = _tgi(server, route="generate", tokenizer="x", top_n_tokens=1, grammar=grammar).generate([SAMPLED, GREEDY])
    assert server.bodies("/generate") == [
        {
            "inputs": "<user>q<assistant>",
            "parameters": {
                "details": True, "do_sample": True, "grammar": grammar, "max_new_tokens": 7, "return_full_text": False,
                "seed": 3, "stop": ["END"], "temperature": 0.7, "top_n_tokens": 1, "top_p": 0.9,
            },
        },
        {
            "inputs": "<user>q<assistant>",
            "parameters": {"details": True, "do_sample": False, "grammar": grammar, "max_new_tokens": 5, "return_full_text": False, "top_n_tokens": 1},
        },
    ]  # fmt: skip
    assert sampled.text == "yes " and sampled.finish_reason == "stop"  # TGI keeps the stop sequence; hfevol cuts it off
    assert greedy.text == "yes END"  # this request had no stop sequence to cut
    assert sampled.completion_tokens == 2 and sampled.logprobs == (-0.5, -0.1) and sampled.top_logprobs == ((("yes", -0.5),), ((" END", -0.1),))


def test_openai_chat_merges_extra_body_and_completions_sends_the_raw_prompt(template):
    server = FakeServer({"/v1/chat/completions": CHAT_ANSWER})
    _openai(server, extra_body={"repetition_penalty": 1.1, "temperature": 0.2}).generate([SAMPLED])
    assert server.bodies("/v1/chat/completions") == [
        {
            "model": "org/vllm-model",
            "messages": [{"role": "user", "content": "q"}],
            "max_tokens": 7,
            "temperature": 0.2,
            "seed": 3,
            "top_p": 0.9,
            "stop": ["END"],
            "stream": False,
            "repetition_penalty": 1.1,
        }
    ]  # extra_body comes last, so it may override a sampling setting
    answer = {
        "choices": [{"text": "done", "finish_reason": "stop", "logprobs": {"token_logprobs": [-0.5, None], "top_logprobs": [{"done": -0.5}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    server = FakeServer({"/v1/completions": answer})
    (result,) = _openai(server, route="completions", tokenizer="x", top_n_tokens=2).generate([GREEDY])
    assert server.bodies("/v1/completions") == [
        {"model": "org/vllm-model", "prompt": "<user>q<assistant>", "max_tokens": 5, "temperature": 0.0, "seed": None, "logprobs": 2}
    ]
    assert (result.text, result.prompt_tokens, result.completion_tokens, result.logprobs, result.top_logprobs) == ("done", 3, 1, (-0.5,), ((("done", -0.5),),))


def test_vllm_tokenize_and_prompt_logprobs():
    tokenized = {"count": 3, "max_model_len": 64, "tokens": [7, 8, 9]}
    scored = {
        "choices": [
            {
                "text": "x",
                "prompt_logprobs": [
                    None,
                    {"8": {"logprob": -1.5, "rank": 2, "decoded_token": "b"}, "4": {"logprob": -0.1, "rank": 1}},
                    {"9": {"logprob": -0.5, "rank": 1, "decoded_token": "c"}},
                ],
            }
        ]
    }
    server = FakeServer({"/tokenize": tokenized, "/v1/completions": scored})
    backend = _openai(server)
    assert backend.run(lambda: backend.aprompt_logprobs("abc")) == [(7, "", None), (8, "b", -1.5), (9, "c", -0.5)]
    assert server.bodies("/tokenize") == [{"model": "org/vllm-model", "prompt": "abc", "add_special_tokens": True}]
    assert server.bodies("/v1/completions") == [{"model": "org/vllm-model", "prompt": [7, 8, 9], "max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 1}]
    assert backend.sends_ids and backend.prompt_limit() == (63, "max_model_len less the generated token")


def test_tgi_prefill_tokenize_and_prompt_limit():
    answer = {
        "generated_text": "x",
        "details": {
            "finish_reason": "length",
            "generated_tokens": 1,
            "prefill": [{"id": 1, "text": "a", "logprob": None}, {"id": 2, "text": "b", "logprob": -1.5}],
        },
    }
    server = FakeServer({"/generate": answer, "/tokenize": [{"id": 1, "text": "a"}, {"id": 2, "text": "b"}]})
    backend = _tgi(server)
    assert backend.run(lambda: backend.aprompt_logprobs("ab")) == [(1, "a", None), (2, "b", -1.5)]
    assert backend.run(lambda: backend.atokenize("ab", special_tokens=False)) == [1, 2]
    assert server.bodies("/generate") == [{"inputs": "ab", "parameters": {"decoder_input_details": True, "details": True, "max_new_tokens": 1}}]
    assert server.bodies("/tokenize")[-1] == {"inputs": "ab", "add_special_tokens": False}
    assert not backend.sends_ids and backend.prompt_limit() == (100, "max_input_tokens")


def test_tgi_without_prefill_log_probs_says_what_to_change():
    server = FakeServer({"/generate": {"generated_text": "x", "details": {"finish_reason": "length", "generated_tokens": 1, "prefill": []}}})
    backend = _tgi(server)
    with pytest.raises(EndpointError, match="returned no prompt log-probabilities") as info:
        backend.run(lambda: backend.aprompt_logprobs("ab"))
    assert info.value.cause == "unsupported" and "--enable-prefill-logprobs" in info.value.hint


def test_build_and_parse_are_pure():
    backend = TGIBackend(urls=URL)
    backend._runtime()
    backend._served = {"model": "m", "revision": None, "limits": [1], "server": {}}  # what the start-up check found
    assert backend.build(GREEDY) == HttpCall(
        "POST", "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "q"}], "max_tokens": 5, "temperature": 0.0, "stream": False}
    )
    with pytest.raises(EndpointError, match=r"answered without choices\[0\]\.message") as info:
        backend.parse({"choices": []}, GREEDY, url=URL)
    assert info.value.cause == "malformed"
    with pytest.raises(EndpointError, match="content is NoneType, not text"):
        backend.parse({"choices": [{"message": {"content": None}}]}, GREEDY, url=URL)


def test_a_retryable_status_is_sent_again_and_a_rejected_one_fails_the_row_with_the_servers_message():
    answers = iter([httpx2.Response(503, json={"error": "Model is overloaded", "error_type": "overloaded"}), CHAT_ANSWER])
    server = FakeServer({"/v1/chat/completions": lambda request: next(answers)})
    backend = _tgi(server)
    (result,) = backend.generate([GREEDY])
    assert result.ok and len(server.bodies("/v1/chat/completions")) == 2
    assert backend.stats.snapshot() == {"successes": 1, "retries": {"overloaded": 1}, "failures": {}}

    rejected = httpx2.Response(422, json={"error": "Input validation error: `inputs` must have less than 100 tokens. Given: 120", "error_type": "validation"})
    server = FakeServer({"/v1/chat/completions": rejected})
    backend = _tgi(server)
    (result,) = backend.generate([GREEDY])
    assert not result.ok and len(server.bodies("/v1/chat/completions")) == 1  # sending it again changes nothing
    assert result.error == f"HTTP 422 from {URL}: Input validation error: `inputs` must have less than 100 tokens. Given: 120"


def test_a_body_that_is_not_json_fails_the_row_after_its_retries():
    server = FakeServer({"/v1/chat/completions": httpx2.Response(200, content=b"<html>proxy error</html>")})
    backend = _tgi(server, retry=RetryPolicy(max_attempts=2, max_total_seconds=5.0, timeout=1.0, initial_backoff=0.01, max_backoff=0.01))
    (result,) = backend.generate([GREEDY])
    assert not result.ok and result.error.startswith("gave up after 2 attempt(s)") and "not valid JSON" in result.error
    assert len(server.bodies("/v1/chat/completions")) == 2


def test_tokenize_at_start_up_finds_a_bad_token_and_a_missing_tokenize_is_fine():
    refused = FakeServer({"/tokenize": httpx2.Response(401, json={"error": "Unauthorized", "error_type": "authentication"})})
    with pytest.raises(AuthenticationError, match="HTTP 401") as info:
        _tgi(refused).check()
    assert info.value.fatal and "token_env" in info.value.hint
    assert len(refused.bodies("/tokenize")) == 1  # not retried

    no_tokenize = FakeServer({"/tokenize": httpx2.Response(404, json={"error": "not found"})})
    assert _tgi(no_tokenize).check()["model"] == "org/tgi-model"


def test_an_openai_server_behind_tgi_api_kind_is_a_clear_error():
    server = FakeServer({"/v1/models": MODELS})  # an OpenAI-compatible server has no /info
    with pytest.raises(EndpointError, match=f"HTTP 404 from {URL}") as info:
        TGIBackend(urls=URL, retry=FAST, transport_factory=server.factory()).check()
    assert info.value.cause == "not_found"
    server = FakeServer({"/info": {"version": "x"}})
    with pytest.raises(EndpointError, match=r"/info did not describe a model \(is it a TGI server\?\)") as info:
        TGIBackend(urls=URL, retry=FAST, transport_factory=server.factory()).check()
    assert "openai API kind" in info.value.hint


def test_every_route_carries_the_same_headers_and_the_token_only_when_asked(monkeypatch, template):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    monkeypatch.setenv("MY_KEY", "k-123")
    for token_env, expected in ((None, None), ("MY_KEY", "Bearer k-123")):
        server = FakeServer(
            {"/generate": {"generated_text": "x", "details": {"finish_reason": "length", "generated_tokens": 1}}, "/v1/chat/completions": CHAT_ANSWER}
        )
        for route in ("chat", "generate"):
            _tgi(server, route=route, tokenizer="x", token_env=token_env, headers={"X-Team": "blue"}).generate([GREEDY])
        assert {p for _, p, _, _ in server.sent} == {"/info", "/tokenize", "/v1/chat/completions", "/generate"}
        for _, path, _, headers in server.sent:
            assert headers.get("authorization") == expected, path  # HF_TOKEN never goes to 127.0.0.1
            assert headers["x-team"] == "blue" and headers["user-agent"].startswith("hfevol/")


def test_the_transport_factory_is_not_a_setting():
    server = FakeServer({})
    backend = _tgi(server)
    copy = pickle.loads(pickle.dumps(backend))  # a lambda would not pickle: it is left out
    assert copy.transport_factory is None and copy == backend
    assert "transport_factory" not in repr(backend)
