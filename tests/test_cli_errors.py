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
