from __future__ import annotations

import asyncio

import pytest
from _helpers import ScriptedBackend

from hfevol import EvolInstruct, SamplingParams
from hfevol.errors import ConfigError, InvalidRowError, MissingColumnError
from hfevol.evolution import OUTPUT_COLUMNS


def _batch():
    return {"instruction": ["Name three primes.", "Sort a list in Python.", "", None, 7], "input": ["", "[3, 1]", "", "", ""], "extra": [1, 2, 3, 4, 5]}


def test_adds_columns_and_marks_unusable_rows_without_dropping_them():
    evolve = EvolInstruct(backend=ScriptedBackend(), round=1)
    out = evolve(_batch(), [0, 1, 2, 3, 4])
    assert set(out) == set(OUTPUT_COLUMNS)
    assert all(len(v) == 5 for v in out.values())
    assert out["evol_status"] == ["ok", "ok", "invalid_input", "invalid_input", "invalid_input"]
    assert out["evol_reason"][2] == "column 'instruction': the value is empty"
    assert out["evol_reason"][3] == "column 'instruction': the value is None"
    assert out["evol_reason"][4] == "column 'instruction': the value is a int, not a string"
    assert out["parent_instruction"][:2] == ["Name three primes.", "Sort a list in Python."]
    assert out["evolved_instruction"][2:] == [None, None, None]
    assert out["evol_round"] == [1] * 5
    # only the two usable rows reached the model
    assert len(evolve.backend.calls) == 2


def test_prompt_is_the_operation_template_around_the_instruction():
    backend = ScriptedBackend()
    evolve = EvolInstruct(backend=backend, operations=("concretize", "breadth"), round=1)
    out = evolve({"instruction": ["Explain gravity.", "Explain tides."]}, [0, 1])
    # ops[(i + 1) % 2]: row 0 -> breadth, row 1 -> concretize
    assert out["evol_operation"] == ["breadth", "concretize"]
    breadth_prompt, concretize_prompt = (r.messages[-1][1] for r in backend.calls)
    assert breadth_prompt.endswith("Explain gravity.") and "brand-new prompt" in breadth_prompt
    assert concretize_prompt.endswith("Explain tides.") and "specific, concrete" in concretize_prompt
    assert all(r.params == evolve.sampling for r in backend.calls)


def test_seeds_are_per_row_stable_and_distinct():
    a = EvolInstruct(backend=ScriptedBackend(), seed=1)({"instruction": ["x", "y"]}, [0, 1])
    b = EvolInstruct(backend=ScriptedBackend(), seed=1)({"instruction": ["x", "y"]}, [0, 1])
    c = EvolInstruct(backend=ScriptedBackend(), seed=2)({"instruction": ["x", "y"]}, [0, 1])
    d = EvolInstruct(backend=ScriptedBackend(), seed=1, round=2)({"instruction": ["x", "y"]}, [0, 1])
    assert a["evol_seed"] == b["evol_seed"]
    assert a["evol_seed"][0] != a["evol_seed"][1]
    assert set(a["evol_seed"]).isdisjoint(c["evol_seed"])
    assert set(a["evol_seed"]).isdisjoint(d["evol_seed"])


def test_without_indices_the_rotation_follows_the_text_not_the_batch_position():
    evolve = EvolInstruct(backend=ScriptedBackend())
    alone = evolve({"instruction": ["Describe rain."]})
    together = evolve({"instruction": ["Other row.", "Describe rain."]})
    assert alone["evol_operation"][0] == together["evol_operation"][1]
    assert alone["evol_seed"][0] == together["evol_seed"][1]


def test_truncated_and_empty_outputs_get_their_status():
    out = EvolInstruct(backend=ScriptedBackend(finish_reason="length"))({"instruction": ["a"]}, [0])
    assert out["evol_status"] == ["truncated"] and "max_new_tokens" in out["evol_reason"][0]
    out = EvolInstruct(backend=ScriptedBackend(reply="  "))({"instruction": ["a"]}, [0])
    assert out["evol_status"] == ["failed"] and out["evolved_instruction"] == [None]


def test_wrapping_quotes_are_removed():
    out = EvolInstruct(backend=ScriptedBackend(reply='"A harder prompt."'))({"instruction": ["a"]}, [0])
    assert out["evolved_instruction"] == ["A harder prompt."]


def test_async_path_gives_the_same_rows():
    evolve = EvolInstruct(backend=ScriptedBackend())
    assert asyncio.run(evolve.acall(_batch(), [0, 1, 2, 3, 4])) == evolve(_batch(), [0, 1, 2, 3, 4])


def test_on_invalid_raise_names_row_and_column():
    evolve = EvolInstruct(backend=ScriptedBackend(), on_invalid="raise")
    with pytest.raises(InvalidRowError) as info:
        evolve({"instruction": ["ok", None]}, [10, 11])
    assert info.value.row == 11 and info.value.column == "instruction"
    assert "row 11, column 'instruction': the value is None" in str(info.value)


def test_missing_column_names_it_and_lists_the_others():
    with pytest.raises(MissingColumnError) as info:
        EvolInstruct(backend=ScriptedBackend())({"prompt": ["a"]})
    assert "column 'instruction' is missing; the dataset has: 'prompt'" in str(info.value)


def test_custom_instruction_column():
    out = EvolInstruct(backend=ScriptedBackend(), instruction_column="prompt")({"prompt": ["Do X."]}, [0])
    assert out["parent_instruction"] == ["Do X."]


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"operations": ("deepen", "widen")}, "unknown operation 'widen'"),
        ({"round": 0}, "round=0"),
        ({"on_invalid": "skip"}, "on_invalid"),
        ({"backend": "embedded"}, "backend must be"),
    ],
)
def test_bad_configuration_fails_at_construction(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        EvolInstruct(**{"backend": ScriptedBackend(), **kwargs})


@pytest.mark.parametrize(
    "kwargs, needle",
    [({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"), ({"max_new_tokens": 0}, "max_new_tokens"), ({"stop": "x"}, "stop")],
)
def test_sampling_params_are_validated(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        SamplingParams(**kwargs)


def test_sampling_params_round_trip_and_reject_unknown_keys():
    p = SamplingParams(temperature=0.2, stop=("###",))
    assert SamplingParams.from_dict(p.to_dict()) == p
    with pytest.raises(ConfigError, match="unknown sampling option"):
        SamplingParams.from_dict({"temp": 1})


def test_metadata_names_backend_prompts_and_sampling():
    meta = EvolInstruct(backend=ScriptedBackend(), operations=("deepen",), seed=5).metadata()
    assert meta["backend"] == {"kind": "scripted", "model": None, "revision": None, "served_model": None}  # the record's backend shape
    assert meta["stage"] == "evol_instruct" and meta["round"] == 1 and meta["sampling"]["temperature"] == 0.7
    assert meta["seed"] == 5 and meta["operations"] == ["deepen"]
    assert len(meta["prompt_versions"]["deepen"]) == 12
