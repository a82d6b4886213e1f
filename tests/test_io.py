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
    {".json": lambda: path.write_text(json.dumps(ROWS)), ".jsonl": lambda: ds.to_json(str(path)), ".csv": lambda: ds.to_csv(str(path), index=False), ".parquet": lambda: ds.to_parquet(str(path))}[suffix]()
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
