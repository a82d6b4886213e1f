"""Top-1 probability recorded by local generation, against an independent teacher-forced re-score;
the per-row columns, the evolver's option and the stage record."""

from __future__ import annotations

import math

import pytest
from _helpers import ScriptedBackend

from hfevol.backends import GenerationRequest, GenerationResult, SamplingParams
from hfevol.backends.local import TransformersBackend
from hfevol.errors import ConfigError
from hfevol.evolution import AutoEvolInstruct, EvolInstruct
from hfevol.top1 import row_columns

PROMPTS = ["Hi", "Write a poem about the sea.", "List three colours, then explain why the sky looks blue at noon."]
SAMPLED = SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=12)
GREEDY = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=12)


def _spy_generate(backend: TransformersBackend, monkeypatch) -> list[tuple[object, object]]:
    """Record (attention mask, output ids) of every ``model.generate`` call: the token ids each row got."""
    model = backend.loaded.model
    original = model.generate
    seen: list[tuple[object, object]] = []

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append((kwargs["input_ids"], out))
        return out

    monkeypatch.setattr(model, "generate", spy)
    return seen


def _teacher_forced_top1(backend: TransformersBackend, prompt_ids: list[int], new_ids: list[int]) -> list[float]:
    """max softmax of the logits at each generated position, from one unpadded forward pass over prompt + generated tokens."""
    import torch

    model = backend.loaded.model
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + new_ids])).logits[0].float()
    start = len(prompt_ids) - 1  # logits at position p predict token p + 1
    return [float(torch.softmax(logits[start + t], dim=-1).max()) for t in range(len(new_ids))]


@pytest.mark.parametrize("params", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_recorded_top1_equals_a_teacher_forced_rescore(tiny_lm_dir, params, monkeypatch):
    backend = TransformersBackend(model=tiny_lm_dir, batch_size=3, dtype="float32", device="cpu")  # one left-padded batch
    tok = backend.loaded.tokenizer
    seen = _spy_generate(backend, monkeypatch)
    requests = [GenerationRequest.chat(p, params=params, seed=10 + i, top1=True) for i, p in enumerate(PROMPTS)]
    results = backend.generate(requests)
    assert len(seen) == 1
    input_ids, out = seen[0]
    eos = tok.eos_token_id
    compared = emitted_not_top = 0
    for request, result in zip(requests, results):
        prompt_ids = tok(backend._render(request), add_special_tokens=False).input_ids
        # the batch row whose unpadded prompt is this one
        b = next(b for b in range(input_ids.shape[0]) if [t for t in input_ids[b].tolist() if t != tok.pad_token_id] == prompt_ids)
        new_ids = out[b, input_ids.shape[1] :].tolist()
        new_ids = new_ids[: new_ids.index(eos)] if eos in new_ids else new_ids  # positions after the end are masked
        assert result.top1 is not None and len(result.top1) == len(new_ids) == result.completion_tokens
        expected = _teacher_forced_top1(backend, prompt_ids, new_ids)
        assert max(abs(a - b) for a, b in zip(result.top1, expected)) < 1e-5
        compared += len(new_ids)
        if params is SAMPLED:  # a drawn token that is not the argmax: the value is the top-1, not the emitted token's
            import torch

            with torch.no_grad():
                logits = backend.loaded.model(torch.tensor([prompt_ids + new_ids])).logits[0].float()
            emitted_not_top += sum(int(logits[len(prompt_ids) - 1 + t].argmax()) != new_ids[t] for t in range(len(new_ids)))
    assert compared >= 10
    if params is SAMPLED:
        assert emitted_not_top > 0


def test_recording_changes_no_text_and_is_off_by_default(tiny_lm_dir):
    backend = TransformersBackend(model=tiny_lm_dir, batch_size=3, dtype="float32", device="cpu")
    for params in (GREEDY, SAMPLED):
        plain = backend.generate([GenerationRequest.chat(p, params=params, seed=3) for p in PROMPTS])
        recorded = backend.generate([GenerationRequest.chat(p, params=params, seed=3, top1=True) for p in PROMPTS])
        assert [r.text for r in plain] == [r.text for r in recorded]
        assert all(r.top1 is None for r in plain)
        assert all(r.top1 is not None for r in recorded)


def test_row_columns_by_hand():
    assert row_columns((0.5, 0.25, 1.0, 0.75), 2) == {"top1_mean_k": 0.375, "top1_mean_all": 0.625, "top1_positions": 4}
    assert row_columns((0.5, 0.25, 1.0, 0.75), 10) == {"top1_mean_k": 0.625, "top1_mean_all": 0.625, "top1_positions": 4}
    assert row_columns((), 5) == {"top1_mean_k": None, "top1_mean_all": None, "top1_positions": 0}
    assert row_columns(None, 5) == {"top1_mean_k": None, "top1_mean_all": None, "top1_positions": None}


class _Top1Backend(ScriptedBackend):
    """The scripted model, with hand-set top-1 values when asked for them."""

    values: tuple[float, ...] = (0.9, 0.6, 0.3, 0.2, 0.1, 0.5, 0.4)

    def generate(self, requests):
        out = super().generate(requests)
        return [GenerationResult(text=r.text, finish_reason=r.finish_reason, top1=self.values if q.top1 else None) for r, q in zip(out, requests)]


def test_evolver_writes_the_columns_and_names_what_was_measured():
    backend = _Top1Backend()
    batch = {"instruction": ["Explain rain.", "", "Name a prime."]}
    for cls in (EvolInstruct, AutoEvolInstruct):
        evolver = cls(backend=backend, record_top1=True, top1_k=5, sampling=SAMPLED)
        out = evolver(batch, [0, 1, 2])
        assert all(r.top1 for r in backend.calls[-2:])
        assert out["top1_mean_k"] == [pytest.approx((0.9 + 0.6 + 0.3 + 0.2 + 0.1) / 5), None, pytest.approx((0.9 + 0.6 + 0.3 + 0.2 + 0.1) / 5)]
        assert out["top1_mean_all"] == [pytest.approx(3.0 / 7), None, pytest.approx(3.0 / 7)]
        assert out["top1_positions"] == [7, None, 7]  # the empty instruction was never sent
        assert set(evolver.output_features()) >= {"top1_mean_k", "top1_mean_all", "top1_positions"}
        top1 = evolver.metadata()["top1"]
        assert (top1["decoding"], top1["k"], top1["distribution"]) == ("sampled", 5, "unknown")
    greedy_local = EvolInstruct(backend=backend, record_top1=True, top1_k=3, sampling=GREEDY)
    assert greedy_local.metadata()["top1"]["decoding"] == "greedy"


def test_off_by_default_no_columns_no_request_flag_same_fingerprint():
    from datasets.fingerprint import Hasher

    backend = ScriptedBackend()
    plain = EvolInstruct(backend=backend)
    out = plain({"instruction": ["Explain rain."]}, [0])
    assert "top1_mean_k" not in out and "top1" not in plain.metadata()
    assert backend.calls[-1].top1 is False
    assert "top1_positions" not in plain.output_features()
    on = EvolInstruct(backend=backend, record_top1=True)
    assert Hasher.hash(plain) != Hasher.hash(on)
    assert "record_top1" not in plain.__getstate__()  # off, the settings of before this option hash as they did


def test_local_metadata_says_raw_logits(tiny_lm_dir):
    evolver = EvolInstruct(backend=TransformersBackend(model=tiny_lm_dir), record_top1=True, sampling=SAMPLED)
    top1 = evolver.metadata()["top1"]
    assert (top1["decoding"], top1["distribution"], top1["k"]) == ("sampled", "raw", 5)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_a_bad_k_is_refused(k):
    with pytest.raises(ConfigError, match="top1_k"):
        EvolInstruct(backend=ScriptedBackend(), record_top1=True, top1_k=k)


def test_means_of_the_local_evolver_are_those_of_its_positions(tmp_path):
    """End to end through ``map`` on the tiny model: the columns hold the means of the recorded values."""
    from _tiny_lm import save_tiny_model
    from datasets import Dataset

    from hfevol.transform import map_rows

    folder = str(save_tiny_model(tmp_path / "tiny", context=2048))  # room for the evolution prompts (a token per character)
    backend = TransformersBackend(model=folder, batch_size=2, dtype="float32", device="cpu")
    evolver = EvolInstruct(backend=backend, record_top1=True, top1_k=3, sampling=SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=6))
    ds = Dataset.from_list([{"instruction": "Add two numbers."}, {"instruction": "Sort a list."}])
    out = map_rows(ds, evolver, evolver.output_features(), with_indices=True, batch_size=2)
    prepared = evolver.prepare(ds[:], [0, 1])
    again = backend.generate(prepared.requests)  # seeded: the same texts and values
    for row, result in zip(out, again):
        assert result.ok, result.error
        values = result.top1
        assert row["top1_positions"] == len(values) > 0
        assert math.isclose(row["top1_mean_all"], sum(values) / len(values), rel_tol=1e-9)
        assert math.isclose(row["top1_mean_k"], sum(values[:3]) / len(values[:3]), rel_tol=1e-9)
        assert all(0 < v <= 1 for v in values)
