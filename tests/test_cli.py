from __future__ import annotations

import json
from pathlib import Path

import pytest

from hfevol.cli import main


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err[err.index("error: ") :]


def test_missing_dataset_path(capsys, tmp_path: Path):
    assert main(["evolve", "--dataset", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]) == 2
    err = _error(capsys)
    assert "does not exist" in err and "Hint:" in err
    assert not (tmp_path / "o").exists()


def test_unknown_operation(capsys, tmp_path: Path):
    assert main(["evolve", "--operations", "deepen", "widen", "--out", str(tmp_path / "o")]) == 2
    assert "unknown operation 'widen'" in _error(capsys)


def test_missing_instruction_column_is_reported_before_any_generation(capsys, tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"prompt": "x"}) + "\n")
    assert main(["evolve", "--dataset", str(path), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "no-model")]) == 2
    # the column check runs before the (missing) model would be loaded
    assert "column 'instruction' is missing" in _error(capsys)


def test_missing_model_path(capsys, tmp_path: Path):
    assert main(["evolve", "--limit", "1", "--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "o")]) == 2
    assert "model path" in _error(capsys)


def test_debug_variable_shows_the_traceback(monkeypatch, tmp_path: Path):
    from hfevol.errors import DatasetNotFoundError

    monkeypatch.setenv("HFEVOL_DEBUG", "1")
    with pytest.raises(DatasetNotFoundError):
        main(["evolve", "--dataset", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")])


@pytest.mark.slow
def test_evolve_command_end_to_end(capsys, tmp_path: Path, embedded):
    from datasets import load_dataset

    out = tmp_path / "evolved"
    assert main(["evolve", "--dataset", "builtin", "--limit", "3", "--out", str(out), "--max-new-tokens", "24", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "Evol-Instruct: 3 rows over 1 round(s)" in printed and str(out) in printed
    ds = load_dataset(str(out), split="train")
    assert len(ds) == 3 and ds["parent_instruction"][:] == ds["root_instruction"][:]
    assert ds["id"][:] == ["general-001-r1", "general-002-r1", "general-003-r1"]
    run = json.loads((out / "hfevol_run.json").read_text())
    assert run["stages"][0]["backend"]["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert run["stages"][0]["sampling"]["max_new_tokens"] == 24
