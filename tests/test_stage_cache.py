"""Running a stage twice does no model call the second time; changing a template, a sampling
parameter or the model does. This rests on ``datasets``' fingerprint cache, so the data is
file-backed, as it is for files and the built-in sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _helpers import KeywordBackend

from hfevol import Elimination, EvolInstruct, Respond, SamplingParams, evolve_rounds, prompts
from hfevol.io import load_rows
from hfevol.transform import map_rows


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    path = tmp_path / "seeds.jsonl"
    rows = [{"id": f"s{i}", "instruction": f"Describe colour number {i}.", "input": ""} for i in range(4)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _evolve(seeds: Path, backend: KeywordBackend, sampling: SamplingParams = SamplingParams(max_new_tokens=64), elimination=Elimination()):  # noqa: B008 - settings only, never changed
    ds = load_rows(str(seeds))
    return evolve_rounds(ds, EvolInstruct(backend=backend, sampling=sampling), 2, elimination=elimination)


@pytest.fixture
def edited_prompts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of the prompt folder that a test may edit; the package reads it instead."""
    folder = tmp_path / "prompts"
    shutil.copytree(Path(prompts.__file__).parent, folder)

    def use() -> Path:
        monkeypatch.setattr(prompts, "_DIR", folder)
        prompts._environment.cache_clear()
        prompts.version.cache_clear()
        return folder

    yield use
    prompts._environment.cache_clear()
    prompts.version.cache_clear()


def test_the_same_evolution_twice_calls_the_model_once(seeds: Path):
    first, again = KeywordBackend(), KeywordBackend()
    a = _evolve(seeds, first)
    b = _evolve(seeds, again)
    assert len(first.calls) == 8 and len(again.calls) == 0
    assert a.to_list() == b.to_list()
    # elimination settings are a separate step: changing them does not re-run the model
    other = KeywordBackend()
    _evolve(seeds, other, elimination=Elimination(min_new_words=50))
    assert len(other.calls) == 0


def test_a_sampling_change_invalidates(seeds: Path):
    _evolve(seeds, KeywordBackend())
    changed = KeywordBackend()
    _evolve(seeds, changed, sampling=SamplingParams(max_new_tokens=64, temperature=0.5))
    assert len(changed.calls) == 8


def test_a_model_change_invalidates(seeds: Path):
    _evolve(seeds, KeywordBackend())
    changed = KeywordBackend(model="keyword-2")
    _evolve(seeds, changed)
    assert len(changed.calls) == 8


def test_a_template_edit_invalidates(seeds: Path, edited_prompts):
    _evolve(seeds, KeywordBackend())
    folder = edited_prompts()
    unchanged = KeywordBackend()
    _evolve(seeds, unchanged)  # the copy is identical: still served from the cache
    assert len(unchanged.calls) == 0
    frame = folder / "evol_instruct" / "_depth.jinja"
    frame.write_text(frame.read_text().replace("Keep these rules:", "Follow these rules:"))
    prompts.version.cache_clear()
    changed = KeywordBackend()
    _evolve(seeds, changed)
    # 4 seeds: rows 0, 1, 2 get depth operations in round 1, row 3 gets breadth ((3 + 1) % 5 = 4);
    # the edit touches only the depth frame, but the whole map is recomputed
    assert len(changed.calls) == 8
    assert "Follow these rules:" in changed.calls[0].messages[-1][1]


def test_the_respond_stage_is_cached_and_invalidated_the_same_way(seeds: Path, edited_prompts):
    def respond(backend, max_new_tokens=32):
        ds = load_rows(str(seeds))
        step = Respond(backend=backend, sampling=SamplingParams(temperature=0, max_new_tokens=max_new_tokens))
        return map_rows(ds, step, step.output_features(), with_indices=True)

    first, again, changed_params = KeywordBackend(), KeywordBackend(), KeywordBackend()
    respond(first)
    respond(again)
    respond(changed_params, max_new_tokens=33)
    assert (len(first.calls), len(again.calls), len(changed_params.calls)) == (4, 0, 4)
    folder = edited_prompts()
    template = folder / "respond" / "answer.jinja"
    template.write_text(template.read_text().replace("Give a complete", "Write a complete"))
    prompts.version.cache_clear()
    edited = KeywordBackend()
    respond(edited)
    assert len(edited.calls) == 4
