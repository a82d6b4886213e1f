"""``hfevol score`` and ``hfevol select`` end to end, on the tiny model."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from hfevol.cli import main

ROWS = [
    {"instruction": "Why is the sky blue?", "input": "", "output": "Because of Rayleigh scattering."},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "The sum is 5."},
    {"instruction": "Sort the list.", "input": "3 1 2", "output": "1 2 3"},
    {"instruction": "Say hi.", "input": "", "output": ""},
    {"instruction": "Name a colour.", "input": "", "output": "Red."},
]


@pytest.fixture
def seeds(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def test_score_then_select(seeds, tmp_path, tiny_lm_dir, capsys, monkeypatch):
    out = tmp_path / "scored"
    with monkeypatch.context() as m:  # the summary reads columns, never the whole dataset as rows
        m.setattr("datasets.Dataset.to_list", lambda self: pytest.fail("the summary read the whole dataset"))
        assert main(["score", "--dataset", str(seeds), "--out", str(out), "--model", tiny_lm_dir, "--device", "cpu", "--batch-size", "2"]) == 0
    printed = capsys.readouterr().out
    assert "IFD / IC-IFD scoring: 5 rows" in printed
    assert "1 × empty answer" in printed and "mean IC-IFD" in printed
    png = out / "ic_ifd_histogram.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scored = load_dataset(str(out), split="train")
    assert scored["score_status"] == ["ok", "ok", "ok", "undefined", "ok"]
    run = json.loads((out / "hfevol_run.json").read_text())
    stage = run["stages"][0]
    assert (stage["stage"], stage["mode"], stage["ifd_form"], stage["ic_ifd_form"]) == ("score", "reference", "loss_ratio", "ratio")
    defined = [v for v in scored["ic_ifd"] if not math.isnan(v)]
    assert run["summary"]["mean_ic_ifd"] == pytest.approx(sum(defined) / len(defined))
    assert run["summary"]["reasons"] == {"empty answer": 1}
    assert run["summary"]["status"] == {"ok": 4, "undefined": 1} and run["summary"]["truncated"] == 0
    assert run["summary"]["scored_tokens"] == sum(sum(scored[c]) for c in ("tokens_q", "tokens_a_given_q", "tokens_a")) > 0

    top = tmp_path / "top"
    assert main(["select", "--dataset", str(out), "--by", "ic_ifd", "--top", "50%", "--out", str(top)]) == 0
    printed = capsys.readouterr().out
    assert "kept 2 of 5 rows" in printed and "undefined score (never kept)       1" in printed
    kept = load_dataset(str(top), split="train")
    best = sorted(defined, reverse=True)[:2]  # 50% of the 4 defined rows
    assert sorted(kept["ic_ifd"], reverse=True) == best


def test_score_refuses_empty_data_and_missing_columns(tmp_path, tiny_lm_dir, capsys):
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"instruction": "x", "output": "y"}) + "\n")
    # --limit is checked like every command's, before the model loads
    assert main(["score", "--dataset", str(one), "--out", str(tmp_path / "o"), "--model", "no/such-model", "--limit", "0"]) == 2
    assert "--limit 0 must be at least 1" in capsys.readouterr().err
    empty = tmp_path / "empty.parquet"  # columns and no rows
    pq.write_table(pa.table({"instruction": pa.array([], pa.string()), "output": pa.array([], pa.string())}), empty)
    assert main(["score", "--dataset", str(empty), "--out", str(tmp_path / "o"), "--model", tiny_lm_dir]) == 2
    assert "empty.parquet' has no rows" in capsys.readouterr().err
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"prompt": "x", "output": "y"}) + "\n")
    assert main(["score", "--dataset", str(wrong), "--out", str(tmp_path / "o"), "--model", tiny_lm_dir]) == 2
    err = capsys.readouterr().err
    assert "column 'instruction' is missing" in err and "Hint:" in err


def test_select_refuses_unscored_data(seeds, tmp_path, capsys):
    assert main(["select", "--dataset", str(seeds), "--out", str(tmp_path / "o")]) == 2
    assert "column 'ic_ifd' is missing" in capsys.readouterr().err
