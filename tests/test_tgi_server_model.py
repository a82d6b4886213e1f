"""The test server with the real embedded model behind it (slow): generation and TGI's prefill log-probs."""

from __future__ import annotations

import asyncio
import math

import pytest
from _servers import FAST

from hfevol.backends import GenerationRequest, SamplingParams
from hfevol.backends.tgi import TGIBackend
from hfevol.testing import ModelEngine, TGITestServer

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PROMPT = "The capital of France is Paris. The capital of Italy is"


@pytest.fixture(scope="module")
def engine(embedded):
    return ModelEngine()


def _greedy_by_hand(engine, prompt: str, steps: int) -> tuple[list[int], list[float]]:
    """Independent oracle: greedy decoding as a plain loop of full forward passes (no cache, no ``generate``)."""
    import torch

    tok, model = engine.loaded.tokenizer, engine.loaded.model
    ids = tok(prompt, add_special_tokens=False).input_ids
    new, logprobs = [], []
    for _ in range(steps):
        with torch.inference_mode():
            logits = model(torch.tensor([ids + new])).logits[0, -1].double()
        token = int(logits.argmax())
        if token == tok.eos_token_id:
            break
        new.append(token)
        logprobs.append(float(torch.log_softmax(logits, dim=-1)[token]))
    return new, logprobs


def test_greedy_generation_matches_a_plain_argmax_loop(engine):
    import httpx2

    prompt = engine.chat_prompt([{"role": "user", "content": "Name three primary colors."}])
    expected_ids, expected_logprobs = _greedy_by_hand(engine, prompt, 6)
    with TGITestServer(engine) as srv:
        body = {"inputs": prompt, "parameters": {"max_new_tokens": 6, "details": True}}
        out = httpx2.post(srv.url + "/generate", json=body, timeout=240).json()
    tokens = out["details"]["tokens"]
    assert [t["id"] for t in tokens] == expected_ids and len(expected_ids) == 6  # the answer is longer than 6 tokens
    assert out["details"]["finish_reason"] == "length" and out["details"]["seed"] is None
    assert out["generated_text"] == engine.loaded.tokenizer.decode(expected_ids, skip_special_tokens=True)
    for got, want in zip(tokens, expected_logprobs):
        assert math.isclose(got["logprob"], want, abs_tol=2e-4)


def test_greedy_text_is_the_same_through_the_chat_and_generate_routes(engine):
    request = GenerationRequest.chat("Name three primary colors.", params=SamplingParams(temperature=0, top_p=1.0, max_new_tokens=24), seed=5)
    prompt = engine.chat_prompt([{"role": "user", "content": "Name three primary colors."}])
    expected_ids, _ = _greedy_by_hand(engine, prompt, 24)
    with TGITestServer(engine) as srv:
        chat = TGIBackend(urls=srv.url, retry=FAST).generate([request])[0]
        raw = TGIBackend(urls=srv.url, route="generate", tokenizer="embedded", retry=FAST).generate([request])[0]
        served = TGIBackend(urls=srv.url, retry=FAST).describe()
    assert chat.ok and raw.ok and chat.text.strip() == raw.text.strip()
    assert chat.text.strip() == engine.loaded.tokenizer.decode(expected_ids, skip_special_tokens=True).strip()
    assert chat.finish_reason == "stop" and len(expected_ids) < 24  # the model ended its answer by itself
    assert served["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_seeded_sampling_is_reproducible_through_the_server(engine):
    params = SamplingParams(temperature=0.9, top_p=0.95, max_new_tokens=16)
    with TGITestServer(engine) as srv:
        backend = TGIBackend(urls=srv.url, retry=FAST)
        a = backend.generate([GenerationRequest.chat("Write a word.", params=params, seed=1)] * 2)
        b = backend.generate([GenerationRequest.chat("Write a word.", params=params, seed=2)])
    assert a[0].text == a[1].text and a[0].text != b[0].text


def test_prefill_logprobs_match_an_independent_prefix_by_prefix_computation(engine):
    import torch

    with TGITestServer(engine, prefill_logprobs=True) as srv:
        prefill = asyncio.run(TGIBackend(urls=srv.url, retry=FAST).aprompt_logprobs(PROMPT))
        sent = srv.generations()[0].body["parameters"]
    assert sent["decoder_input_details"] is True and sent["details"] is True
    tok, model = engine.loaded.tokenizer, engine.loaded.model
    ids = tok(PROMPT).input_ids
    assert [t[0] for t in prefill] == ids and prefill[0][2] is None
    # Independent procedure: score token k from a forward pass over ids[:k] alone.
    for k in (1, 4, len(ids) - 1):
        with torch.inference_mode():
            logits = model(torch.tensor([ids[:k]])).logits[0, -1].double()
        expected = float(torch.log_softmax(logits, dim=-1)[ids[k]])
        assert math.isclose(prefill[k][2], expected, abs_tol=2e-4)
    assert all(t[2] < 0 for t in prefill[1:])
    assert "".join(t[1] for t in prefill) == PROMPT


def test_prefill_logprobs_disabled_on_the_server_is_a_clear_error(engine):
    from hfevol.errors import EndpointError

    with TGITestServer(engine) as srv:  # TGI 3 without --enable-prefill-logprobs answers with an empty list
        with pytest.raises(EndpointError, match="no prompt log-probabilities") as info:
            asyncio.run(TGIBackend(urls=srv.url, retry=FAST).aprompt_logprobs(PROMPT))
        assert "--enable-prefill-logprobs" in str(info.value)
        assert srv.generations()[0].status == 200 and len(srv.generations()) == 1  # not retried


def test_tokenize_has_tgi_shape(engine):
    import httpx2

    with TGITestServer(engine) as srv:
        tokens = httpx2.post(srv.url + "/tokenize", json={"inputs": "Hello world"}).json()
    assert [t["text"] for t in tokens] == ["Hello", " world"]
    assert tokens[1]["start"] == 5 and tokens[1]["stop"] == 11 and isinstance(tokens[0]["id"], int)


def test_context_length_error_from_the_real_tokenizer(engine):
    with TGITestServer(engine, max_input_tokens=50, max_total_tokens=100) as srv:
        [result] = TGIBackend(urls=srv.url, retry=FAST).generate(
            [GenerationRequest.chat("word " * 80, params=SamplingParams(temperature=0, top_p=1.0, max_new_tokens=20))]
        )
    assert not result.ok and "HTTP 422" in result.error and "`inputs` tokens + `max_new_tokens` must be <= 100" in result.error
