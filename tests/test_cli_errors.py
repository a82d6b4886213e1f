"""Bad input to `publish`, `score` and `select`: one line naming the file, column or option, exit 2, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

from _publish_helpers import make_output

from hfevol.cli import main


def _error(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err[err.index("error: ") :].splitlines()


def test_publish_a_file_says_it_is_a_file(tmp_path: Path, capsys):
    out = make_output(tmp_path / "out")
    data = next((out / "data").rglob("*.parquet"))
    before = sorted(tmp_path.rglob("*"))
    assert main(["publish", str(data), "--version", "v1"]) == 2
    first, hint = _error(capsys)[:2]
    assert first == f"error: {str(data)!r} is a file, not an output folder"
    assert hint == "Hint: give the folder that holds hfevol_run.json and data/ (the --out folder of an hfevol run), not a file in it."
    assert sorted(tmp_path.rglob("*")) == before  # no release folder was made
    assert main(["publish", str(tmp_path / "nothing"), "--version", "v1"]) == 2
    assert "does not exist" in _error(capsys)[0]


def _scored(tmp_path: Path) -> str:
    path = tmp_path / "scored.jsonl"
    rows = [{"id": i, "instruction": f"q{i}", "output": f"a{i}", "ifd": 0.5 + i / 10, "ic_ifd": 1.0 + i, "score_status": "ok"} for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_select_by_a_text_column_is_refused_and_writes_nothing(tmp_path: Path, capsys):
    assert main(["select", "--dataset", _scored(tmp_path), "--by", "instruction", "--out", str(tmp_path / "o")]) == 2
    first, hint = _error(capsys)[:2]
    assert first == "error: --by 'instruction' names a column of string values; rows can only be ranked by a numeric score"
    assert hint == "Hint: choose one of the numeric columns: id, ifd, ic_ifd."
    assert not (tmp_path / "o").exists()


def test_select_by_a_missing_column_lists_the_numeric_ones_on_scored_data(tmp_path: Path, capsys):
    assert main(["select", "--dataset", _scored(tmp_path), "--by", "nonexistent", "--out", str(tmp_path / "o")]) == 2
    first, hint = _error(capsys)[:2]
    assert first == "error: column 'nonexistent' is missing; the dataset has: 'id', 'instruction', 'output', 'ifd', 'ic_ifd', 'score_status'"
    assert hint == "Hint: --by must name one of its numeric columns: id, ifd, ic_ifd."
    assert not (tmp_path / "o").exists()


def test_select_on_unscored_data_still_says_score_first(tmp_path: Path, capsys):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"instruction": "q", "output": "a"}\n')
    assert main(["select", "--dataset", str(seeds), "--out", str(tmp_path / "o")]) == 2
    assert _error(capsys)[1] == "Hint: score the data first: `hfevol score` (or the Score transform) adds ifd and ic_ifd."


def test_score_hint_for_a_missing_column_names_the_cli_option(tmp_path: Path, capsys):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"question": "q", "answer": "a"}\n')
    assert main(["score", "--dataset", str(seeds), "--out", str(tmp_path / "o")]) == 2  # checked before the model loads
    first, hint = _error(capsys)[:2]
    assert first == "error: column 'instruction' is missing; the dataset has: 'question', 'answer'"
    assert hint == "Hint: name the dataset's column with --instruction-column COLUMN."
    assert main(["score", "--dataset", str(seeds), "--instruction-column", "question", "--out", str(tmp_path / "o")]) == 2
    assert _error(capsys)[1] == "Hint: name the dataset's column with --output-column COLUMN."
    assert not (tmp_path / "o").exists()
