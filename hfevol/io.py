"""Reading seed data and writing hfevol outputs as local dataset folders."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DataError, DatasetNotFoundError
from .paths import package_file

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

BUILTIN_SAMPLE = "builtin"
"""Name of the built-in seed sample: 60 instructions (general, math, code) in Alpaca layout."""

RUN_FILE = "hfevol_run.json"
"""The file in an output folder that records how the data was made."""

_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".arrow": "arrow", ".txt": "text"}


def builtin_sample(category: str | None = None) -> "Dataset":
    """The built-in seed sample, optionally only one ``category`` (general, math or code)."""
    from datasets import Dataset

    rows = [json.loads(line) for line in package_file("data", "seed_sample.jsonl").read_text().splitlines() if line.strip()]
    if category is not None:
        known = sorted({r["category"] for r in rows})
        if category not in known:
            raise DataError(f"unknown sample category {category!r}", hint=f"choose from {', '.join(known)}.")
        rows = [r for r in rows if r["category"] == category]
    return Dataset.from_list(rows)


def load_rows(source: str, *, split: str = "train") -> "Dataset":
    """Load a dataset from ``builtin``, a local file, a local folder or a Hub id.

    Files: ``.json``, ``.jsonl``, ``.csv``, ``.parquet``, ``.arrow``. Folders: one written by
    ``save_to_disk``, or one that ``datasets.load_dataset`` understands (an hfevol output, a
    cloned Hub repo, a folder of data files).

    Raises:
        DatasetNotFoundError: the path does not exist, or the Hub id cannot be reached.
        DataError: the file or folder cannot be read as a dataset, or has no such split.
    """
    import datasets

    if source == BUILTIN_SAMPLE:
        return builtin_sample()
    path = Path(source).expanduser()
    if path.exists():
        try:
            if path.is_file():
                builder = _FILE_BUILDERS.get(path.suffix.lower())
                if builder is None:
                    raise DataError(
                        f"cannot read {source!r}: unknown file type {path.suffix!r}",
                        hint=f"use one of {', '.join(sorted(_FILE_BUILDERS))}.",
                    )
                return datasets.load_dataset(builder, data_files=str(path), split="train")
            if (path / "dataset_info.json").is_file() or (path / "state.json").is_file():
                loaded = datasets.load_from_disk(str(path))
                return _pick_split(loaded, split, source)
            return _pick_split(datasets.load_dataset(str(path)), split, source)
        except (DataError, DatasetNotFoundError):
            raise
        except Exception as exc:
            raise DataError(f"cannot read {source!r} as a dataset: {str(exc).splitlines()[0]}") from exc
    if source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise DatasetNotFoundError(
            f"dataset path {source!r} does not exist",
            hint=f"give an existing file or folder, a Hub id like 'user/name', or {BUILTIN_SAMPLE!r} for the built-in sample.",
        )
    try:
        return datasets.load_dataset(source, split=split)
    except Exception as exc:
        raise DatasetNotFoundError(
            f"cannot load Hub dataset {source!r}: {str(exc).splitlines()[0]}",
            hint="check the id and your network; with HF_HUB_OFFLINE=1 only cached datasets load.",
        ) from exc


def _pick_split(loaded: Any, split: str, source: str) -> "Dataset":
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{source!r} has no split {split!r}", hint=f"available splits: {', '.join(loaded)}.")
        return loaded[split]
    return loaded


def write_output(ds: "Dataset", out_dir: str | Path, run: dict[str, Any], *, split: str = "train") -> Path:
    """Write ``ds`` as ``<out>/data/<split>.parquet`` with the run record beside it.

    The folder loads back with ``datasets.load_dataset(out_dir)``. A previous file of the
    same split is replaced only once the new one is fully written.
    """
    out = Path(out_dir)
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / f"{split}.parquet"
    tmp = target.with_suffix(".parquet.tmp")
    ds.to_parquet(str(tmp))
    tmp.replace(target)
    (out / RUN_FILE).write_text(json.dumps(run, indent=2, ensure_ascii=False, default=str) + "\n")
    return target
