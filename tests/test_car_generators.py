"""Generator specs, the Generator-Zoo columns, and missing responses."""

from __future__ import annotations

import pytest

from hfevol.backends.base import GREEDY
from hfevol.car.generators import GeneratorSpec, check_labels, check_responses, parse_generator, sampling_for
from hfevol.errors import ConfigError, DataError, MissingColumnError


def test_parse_generator() -> None:
    assert parse_generator("embedded") == GeneratorSpec("embedded", "local", "embedded")
    assert parse_generator("embedded:gemma3-270m") == GeneratorSpec("gemma3-270m", "local", "embedded:gemma3-270m")
    assert parse_generator("local:/models/qwen2-7b") == GeneratorSpec("qwen2-7b", "local", "/models/qwen2-7b")
    assert parse_generator("big=http://127.0.0.1:8080") == GeneratorSpec("big", "endpoint", "http://127.0.0.1:8080")
    assert parse_generator("openai+http://h:1/v1").api == "openai"
    assert parse_generator("column:gpt4_answer") == GeneratorSpec("gpt4_answer", "column", "gpt4_answer")
    with pytest.raises(ConfigError, match="not understood"):
        parse_generator("gpt-4")
    with pytest.raises(ConfigError, match="names no"):
        parse_generator("column:")


def test_labels_are_unique_and_never_overwrite() -> None:
    with pytest.raises(ConfigError, match="two generators"):
        check_labels([parse_generator("embedded"), parse_generator("local:embedded")], ["instruction"])
    with pytest.raises(ConfigError, match="overwrite"):
        check_labels([parse_generator("instruction=embedded")], ["instruction"])
    with pytest.raises(MissingColumnError):
        check_labels([parse_generator("column:nope")], ["instruction"])


def test_base_model_generation_stops_at_the_next_turn() -> None:
    assert sampling_for(parse_generator("embedded:gemma3-270m"), GREEDY).stop == ("\nUser:",)
    assert sampling_for(parse_generator("embedded"), GREEDY).stop == ()


def test_missing_responses_are_counted_and_refused_unless_allowed() -> None:
    from datasets import Dataset

    ds = Dataset.from_dict({
        "instruction": ["a", "b", "c", "d"],
        "x": ["1", None, "3", "4"],
        "y": ["1", "2", "", "4"],
        "y_status": ["ok", "ok", "ok", "truncated"],
        "z": ["1", "2", "3", "4"],
        "z_status": ["ok", "failed", "ok", "ok"],
    })  # fmt: skip
    specs = [parse_generator("column:x"), GeneratorSpec("y", "column", "y"), GeneratorSpec("z", "column", "z")]
    with pytest.raises(DataError, match=r"x: 1 of 4 rows \(e.g. rows 1\); y: 1 of 4 rows \(e.g. rows 2\); z: 1 of 4") as err:
        check_responses(ds, specs)
    assert "allow-missing" in str(err.value)
    coverage = check_responses(ds, specs, allow_missing=True)
    assert coverage.rows == [0, 3]  # a truncated response still counts
    assert coverage.missing == {"x": 1, "y": 1, "z": 1}
    with pytest.raises(DataError, match="no row"):
        check_responses(ds.select([1, 2]), specs, allow_missing=True)
