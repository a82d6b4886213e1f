from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from hfevol.errors import DataError, DatasetNotFoundError
from hfevol.io import RUN_FILE, builtin_sample, load_rows, write_output


def test_builtin_sample_is_sixty_alpaca_rows_in_three_categories():
    ds = builtin_sample()
    assert len(ds) == 60
    assert {"instruction", "input", "output"} <= set(ds.column_names)
    assert Counter(ds["category"]) == {"general": 20, "math": 20, "code": 20}
    assert all(isinstance(t, str) and t.strip() for t in ds["instruction"])
    assert len(set(ds["id"])) == 60
    assert len(builtin_sample("math")) == 20
    with pytest.raises(DataError, match="unknown sample category"):
        builtin_sample("poetry")


def test_math_rows_end_with_a_gsm8k_answer_line():
    for row in builtin_sample("math"):
        last = row["output"].strip().splitlines()[-1]
        assert last.startswith("#### ") and last[5:].replace(",", "").lstrip("-").isdigit(), row["id"]


ROWS = [{"instruction": "a", "input": "", "output": "b"}, {"instruction": "c", "input": "d", "output": "e"}]


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".parquet"])
def test_load_rows_reads_files(tmp_path: Path, suffix: str):
    from datasets import Dataset

    path = tmp_path / f"seeds{suffix}"
    ds = Dataset.from_list(ROWS)
    {
        ".json": lambda: path.write_text(json.dumps(ROWS)),
        ".jsonl": lambda: ds.to_json(str(path)),
        ".csv": lambda: ds.to_csv(str(path), index=False),
        ".parquet": lambda: ds.to_parquet(str(path)),
    }[suffix]()
    loaded = load_rows(str(path))
    assert loaded["instruction"][:] == ["a", "c"]


def test_load_rows_reads_folders(tmp_path: Path):
    from datasets import Dataset, DatasetDict

    Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
    assert len(load_rows(str(tmp_path / "saved"))) == 2
    DatasetDict({"train": Dataset.from_list(ROWS), "test": Dataset.from_list(ROWS[:1])}).save_to_disk(str(tmp_path / "dd"))
    assert len(load_rows(str(tmp_path / "dd"), split="test")) == 1
    with pytest.raises(DataError, match="no split 'validation'"):
        load_rows(str(tmp_path / "dd"), split="validation")


def test_missing_path_is_a_clear_error(tmp_path: Path):
    with pytest.raises(DatasetNotFoundError, match="does not exist") as info:
        load_rows(str(tmp_path / "nope.jsonl"))
    assert "builtin" in str(info.value)


def test_unknown_hub_id_offline_is_a_clear_error():
    with pytest.raises(DatasetNotFoundError, match="cannot load Hub dataset 'someone/nothing'"):
        load_rows("someone/nothing")


def test_unreadable_file_types_are_refused(tmp_path: Path):
    path = tmp_path / "seeds.xlsx"
    path.write_bytes(b"\x00")
    with pytest.raises(DataError, match="unknown file type"):
        load_rows(str(path))


def test_write_output_loads_back_with_datasets(tmp_path: Path):
    from datasets import Dataset, load_dataset

    write_output(Dataset.from_list(ROWS), tmp_path / "out", {"stages": []})
    back = load_dataset(str(tmp_path / "out"), split="train")
    assert back.to_list() == ROWS
    run = json.loads((tmp_path / "out" / RUN_FILE).read_text())
    assert run["stages"] == [] and run["schema_version"] >= 1
    data = tmp_path / "out" / "data" / "train.parquet"  # the record lists each data file with its own digest and row count
    assert run["files"] == [{"path": "data/train.parquet", "sha256": hashlib.sha256(data.read_bytes()).hexdigest(), "rows": len(ROWS)}]


# -- unreadable seed files: one line naming the file and the line ---------------------------


@pytest.mark.parametrize(
    "name, content, where",
    [
        ("seeds.jsonl", b'{"instruction": "a"}\n{"instruction": "caf\xe9"}\n', "line 2, byte 21 (0xe9)"),
        ("seeds.csv", b"instruction,input\nfine,\n\xff\xfebad,\n", "line 3, byte 1 (0xff)"),
        ("seeds.json", b'[{"instruction": "a"},\n {"instruction": "b\x80"}]\n', "line 2, byte 20 (0x80)"),
    ],
)
def test_bytes_that_are_not_utf8_name_the_file_and_line(tmp_path: Path, name: str, content: bytes, where: str):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_rows(str(path))
    assert info.value.message == f"{str(path)!r} is not UTF-8 text: {where} cannot be decoded"
    assert "UTF-8" in info.value.hint


def test_utf8_is_checked_across_block_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import hfevol.file_checks

    monkeypatch.setattr(hfevol.file_checks, "_CHUNK", 7)  # lines and a 2-byte character straddle blocks
    path = tmp_path / "seeds.jsonl"
    path.write_bytes('{"instruction": "é"}\n'.encode() * 3 + b'{"instruction": "\xc3"}\n')
    with pytest.raises(DataError, match=r"line 4, byte 18 \(0xc3\)"):
        load_rows(str(path))


@pytest.mark.parametrize(
    "name, text, problem",
    [
        ("seeds.jsonl", '{"instruction": "a"}\n\n{"instruction": "b"\n{"instruction": "c"}\n', "line 3, column 20: Expecting ',' delimiter"),
        ("seeds.jsonl", '{"instruction": "a"}\n["b"]\n', "line 2: a JSON list, not an object (one row per line)"),
        ("seeds.json", '{"instruction": "a"}\n{"instruction": "b",}\n', "line 2, column 21: Expecting property name enclosed in double quotes"),
        ("seeds.json", '[\n  {"instruction": "a"},\n  {"instruction": "b"}\n  {"instruction": "c"}\n]\n', "line 4, column 3: Expecting ',' delimiter"),
    ],
)
def test_a_json_syntax_error_names_its_line(tmp_path: Path, name: str, text: str, problem: str):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_rows(str(path))
    assert info.value.message == f"{str(path)!r} is not valid JSON: {problem}"


def test_the_cli_prints_the_unreadable_line_in_one_line(tmp_path: Path, capsys):
    from hfevol.cli import main

    path = tmp_path / "seeds.jsonl"
    path.write_bytes(b'{"instruction": "a"}\n{"instruction": "b"}\n{"instruction": "\xff"}\n')
    assert main(["evolve", "--dataset", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[0] == f"error: {str(path)!r} is not UTF-8 text: line 3, byte 18 (0xff) cannot be decoded"
    assert not (tmp_path / "o").exists()


# -- an output folder whose record or data is damaged: retry-failed says so in one line -------


def _evolve_output(folder: Path) -> Path:
    from datasets import Dataset

    record = {"stages": [], "commands": [{"command": "evolve", "options": {"dataset": "seeds.jsonl", "no_cache": False}}]}
    return write_output(Dataset.from_dict({"instruction": ["a", "b"], "evol_status": ["ok", "failed"]}), folder, record)


def _retry_error(capsys, folder: Path) -> str:
    from hfevol.cli import main

    assert main(["retry-failed", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "ERROR" not in err
    return err[err.index("error: ") :].splitlines()[0]


def test_retry_failed_on_a_truncated_run_record_is_one_line(tmp_path: Path, capsys):
    out = _evolve_output(tmp_path / "o")
    text = (out / RUN_FILE).read_text()
    (out / RUN_FILE).write_text(text[: len(text) // 2])
    line = _retry_error(capsys, out)
    assert line.startswith(f"error: {str(out / RUN_FILE)!r} is not valid JSON (line ")
    assert line.endswith("); the run record is truncated or damaged")
    (out / RUN_FILE).write_text("[1, 2]\n")
    assert _retry_error(capsys, out) == f"error: {str(out / RUN_FILE)!r} is not an hfevol run record: it holds a JSON list, not an object"


def test_retry_failed_on_a_corrupt_parquet_file_names_it(tmp_path: Path, capsys):
    out = _evolve_output(tmp_path / "o")
    data = out / "data" / "train.parquet"
    data.write_bytes(data.read_bytes()[:-20])  # cut off the footer
    line = _retry_error(capsys, out)
    assert line.startswith(f"error: data file {str(data)!r} is not a readable parquet file: ")


def test_read_parquet_files_names_the_damaged_one_of_several(tmp_path: Path):
    from datasets import Dataset

    from hfevol.io import read_parquet_files

    good, bad = tmp_path / "a.parquet", tmp_path / "b.parquet"
    Dataset.from_dict({"x": [1, 2]}).to_parquet(str(good))
    bad.write_bytes(b"PAR1 not really parquet PAR1")
    assert read_parquet_files([good])["x"] == [1, 2]
    with pytest.raises(DataError, match=f"data file {str(bad)!r} is not a readable parquet file"):
        read_parquet_files([good, bad])
