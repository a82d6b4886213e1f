"""The in-process backend with the real embedded model."""

from __future__ import annotations

import pytest

from hfevol import EvolInstruct, GenerationRequest, SamplingParams, TransformersBackend
from hfevol.backends import GREEDY

pytestmark = pytest.mark.slow

SHORT = SamplingParams(max_new_tokens=24)


def _requests(n, params=SHORT):
    return [GenerationRequest.chat(f"Write one question about the number {i}.", params=params, seed=100 + i) for i in range(n)]


def test_seeded_rows_do_not_depend_on_batch_size_or_neighbours(embedded):
    reqs = _requests(4)
    batched = TransformersBackend(batch_size=4, device="cpu").generate(reqs)
    single = TransformersBackend(batch_size=1, device="cpu").generate([reqs[2]])
    assert single[0].text == batched[2].text
    assert all(r.ok and r.text for r in batched)
    assert len({r.text for r in batched}) > 1


def test_greedy_is_deterministic_and_seed_free(embedded):
    params = SamplingParams(temperature=0, top_p=1.0, max_new_tokens=16)
    a = TransformersBackend(device="cpu").generate([GenerationRequest.chat("Name a fruit.", params=params, seed=1)])
    b = TransformersBackend(device="cpu").generate([GenerationRequest.chat("Name a fruit.", params=params, seed=2)])
    assert a[0].text == b[0].text and a[0].text


def test_different_seeds_sample_different_texts(embedded):
    backend = TransformersBackend(device="cpu")
    texts = {backend.generate([GenerationRequest.chat("Tell me a story about a cat.", params=SHORT, seed=s)])[0].text for s in range(3)}
    assert len(texts) == 3


def test_stop_strings_and_length_limits(embedded):
    backend = TransformersBackend(device="cpu")
    [r] = backend.generate(
        [GenerationRequest.chat("Count from 1 to 20, separated by commas.", params=SamplingParams(temperature=0, max_new_tokens=40, stop=("5",)))]
    )
    assert "5" not in r.text and r.finish_reason == "stop"
    [r] = backend.generate([GenerationRequest.chat("Write a long essay about rivers.", params=SamplingParams(temperature=0, max_new_tokens=5))])
    assert r.finish_reason == "length" and r.completion_tokens == 5


def test_prompt_longer_than_the_context_is_a_row_error(embedded):
    backend = TransformersBackend(device="cpu")
    limit = embedded.model.config.max_position_embeddings
    too_long = GenerationRequest.chat("word " * limit, params=SHORT)
    results = backend.generate([too_long, _requests(1)[0]])
    assert not results[0].ok and "context" in results[0].error
    assert results[1].ok


def test_greedy_constant_is_greedy():
    assert GREEDY.greedy and GREEDY.temperature == 0


def test_evolve_a_few_rows_with_the_real_model(embedded):
    from datasets import Dataset

    ds = Dataset.from_list(
        [{"instruction": t, "input": ""} for t in ["Give three tips for sleeping well.", "What is the capital of France?", "Write a haiku about winter."]]
    )
    evolve = EvolInstruct(backend=TransformersBackend(device="cpu"), sampling=SamplingParams(max_new_tokens=48), seed=7)
    out = ds.map(evolve, batched=True, with_indices=True)
    rows = out.to_list()
    assert [r["evol_operation"] for r in rows] == ["deepen", "concretize", "increase_reasoning"]
    for r in rows:
        assert r["evol_status"] in ("ok", "truncated"), r
        assert r["evolved_instruction"] and r["evolved_instruction"] != r["instruction"]
        assert r["parent_instruction"] == r["instruction"] and r["input"] == ""
    again = ds.map(EvolInstruct(backend=TransformersBackend(device="cpu"), sampling=SamplingParams(max_new_tokens=48), seed=7), batched=True, with_indices=True)
    assert again["evolved_instruction"][:] == out["evolved_instruction"][:]
