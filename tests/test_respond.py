"""The responder transform."""

from __future__ import annotations

import json

import pytest
from _helpers import ScriptedBackend

from hfevol import Respond, SamplingParams
from hfevol.errors import ConfigError, MissingColumnError


def _batch():
    return {
        "id": ["a-r1", "b-r1", "c-r1", "d-r1"],
        "instruction": ["Name three primes.", "Sort the list.", None, "Say hi."],
        "input": ["", "[3, 1, 2]", "", ""],
        "evol_status": ["ok", "ok", "failed", "eliminated"],
    }


def test_answers_ok_rows_and_skips_the_others_keeping_them():
    backend = ScriptedBackend(reply="Answer: {last_line}")
    out = Respond(backend=backend)(_batch(), [0, 1, 2, 3])
    assert out["output_status"] == ["ok", "ok", "skipped", "skipped"]
    assert out["output_reason"][2:] == ["not answered: evol_status is 'failed'", "not answered: evol_status is 'eliminated'"]
    assert out["output"][2:] == [None, None]
    assert len(backend.calls) == 2


def test_the_prompt_carries_the_instruction_and_its_input_only_when_there_is_one():
    backend = ScriptedBackend()
    Respond(backend=backend)(_batch(), [0, 1, 2, 3])
    without, with_input = (r.messages[-1][1] for r in backend.calls)
    assert "Name three primes." in without and "Input:" not in without
    assert with_input.endswith("Input:\n[3, 1, 2]") and "Sort the list." in with_input
    assert len(backend.calls[0].messages) == 1 and backend.calls[0].messages[0][0] == "user"


def test_greedy_by_default_and_the_responder_is_recorded_per_row():
    backend = ScriptedBackend()
    respond = Respond(backend=backend)
    out = respond(_batch(), [0, 1, 2, 3])
    assert respond.sampling.greedy and all(r.params.greedy for r in backend.calls)
    record = json.loads(out["output_responder"][0])
    assert record["backend"] == {"kind": "scripted", "model": None, "revision": None, "served_model": None}  # the run record's backend shape
    assert record["sampling"]["temperature"] == 0.0 and record["stage"] == "respond"
    assert len(record["prompt_versions"]["answer"]) == 12
    assert len(set(out["output_seed"])) == 4  # one seed per row, from its id


def test_the_output_column_name_is_configurable_for_several_responders():
    batch = _batch()
    a = Respond(backend=ScriptedBackend(reply="A"), output_column="response_a")(batch, [0, 1, 2, 3])
    b = Respond(backend=ScriptedBackend(reply="B"), output_column="response_b", skip_unless=None)(batch, [0, 1, 2, 3])
    assert set(a) == {"response_a", "response_a_status", "response_a_reason", "response_a_responder", "response_a_seed"}
    assert a["response_a"][:2] == ["A", "A"]
    # without the gate, every usable row is answered; the None instruction is invalid_input
    assert b["response_b_status"] == ["ok", "ok", "invalid_input", "ok"]


def test_failures_and_truncation_are_statuses():
    out = Respond(backend=ScriptedBackend(reply="x", finish_reason="length"), sampling=SamplingParams(temperature=0, max_new_tokens=5))({"instruction": ["q"]})
    assert out["output_status"] == ["truncated"] and out["output"] == ["x"] and "max_new_tokens=5" in out["output_reason"][0]
    out = Respond(backend=ScriptedBackend(reply=" "))({"instruction": ["q"]})
    assert out["output_status"] == ["failed"] and out["output"] == [None]


def test_bad_settings_and_missing_columns():
    with pytest.raises(ConfigError, match="overwrite the instruction"):
        Respond(backend=ScriptedBackend(), output_column="instruction")
    with pytest.raises(ConfigError, match="backend must be"):
        Respond(backend="embedded")
    with pytest.raises(MissingColumnError, match="'instruction'"):
        Respond(backend=ScriptedBackend())({"prompt": ["x"]})


@pytest.mark.slow
def test_real_model_answers_greedily_and_reproducibly(embedded):
    from datasets import Dataset

    from hfevol import TransformersBackend
    from hfevol.transform import map_rows

    ds = Dataset.from_list([{"instruction": "What is the capital of France?", "input": ""}, {"instruction": "Add the numbers.", "input": "2 and 3"}])
    respond = Respond(backend=TransformersBackend(device="cpu"), sampling=SamplingParams(temperature=0, max_new_tokens=12))
    first = map_rows(ds, respond, respond.output_features(), with_indices=True)
    second = map_rows(ds, respond, respond.output_features(), with_indices=True)
    assert first["output"][:] == second["output"][:]
    assert all(first["output"]) and set(first["output_status"]) <= {"ok", "truncated"}
    assert json.loads(first["output_responder"][0])["backend"]["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
