"""Reading seed data and writing hfevol outputs as local dataset folders."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .errors import DataError, DatasetNotFoundError, EmptyDatasetError
from .file_checks import TEXT_SUFFIXES, check_utf8, json_problem
from .paths import package_file
from .record import RUN_FILE, FileRecord, RunRecord  # noqa: F401 - RUN_FILE: hfevol.io.RUN_FILE is imported by users and tests

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

logger = logging.getLogger(__name__)

BUILTIN_SAMPLE = "builtin"
"""Name of the built-in seed sample: 60 instructions (general, math, code) in Alpaca layout.
``builtin:<category>`` names one category (``builtin:math``)."""

_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".arrow": "arrow", ".txt": "text"}


def builtin_sample(category: str | None = None) -> "Dataset":
    """The built-in seed sample, optionally only one ``category`` (general, math or code).

    It is read with ``load_dataset("json", ...)``, so it is file-backed and ``datasets``
    caches the maps applied to it: an identical second run is served from that cache.
    """
    import datasets

    path = package_file("data", "seed_sample.jsonl")
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    if category is not None:
        known = sorted(set(ds["category"]))
        if category not in known:
            raise DataError(f"unknown sample category {category!r}", hint=f"choose from {', '.join(known)}.")
        ds = ds.filter(_in_category, input_columns=["category"], batched=True, fn_kwargs={"category": category})
    return ds


def _in_category(values: list[str], category: str) -> list[bool]:
    return [v == category for v in values]


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
    if source.startswith(BUILTIN_SAMPLE + ":"):
        return builtin_sample(source.split(":", 1)[1])
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
                if path.suffix.lower() in TEXT_SUFFIXES:
                    check_utf8(path, source)  # datasets would load JSON Lines with bad bytes and crash later
                try:
                    return datasets.load_dataset(builder, data_files=str(path), split="train")
                except Exception:
                    if _file_has_no_rows(path):  # datasets cannot build a split from an empty file
                        raise EmptyDatasetError(f"dataset file {source!r} has no rows", hint="check the file, or point --dataset at another one.") from None
                    problem = json_problem(path) if builder == "json" else None
                    if problem is not None:
                        raise DataError(
                            f"{source!r} is not valid JSON: {problem}", hint="fix the file at that line (JSON Lines hold one JSON object per line)."
                        ) from None
                    raise
            if (path / "dataset_info.json").is_file() or (path / "state.json").is_file():
                loaded = datasets.load_from_disk(str(path))
                return _pick_split(loaded, split, source)
            return _pick_split(datasets.load_dataset(str(path)), split, source)
        except (DataError, DatasetNotFoundError):
            raise  # EmptyDatasetError is a DataError
        except Exception as exc:
            raise DataError(f"cannot read {source!r} as a dataset: {_first_line(exc)}") from exc
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


def read_parquet_files(files: Sequence[str | Path]) -> "Dataset":
    """The rows of the parquet files ``files`` (one schema), as one dataset.

    Raises:
        DataError: a file is not a readable parquet file (the error names it).
    """
    import datasets
    import pyarrow.parquet as pq

    def refuse(f: str | Path, exc: Exception) -> DataError:
        return DataError(f"data file {str(f)!r} is not a readable parquet file: {_first_line(exc)}", hint="re-run the command that wrote the folder.")

    for f in files:  # a truncated file has no footer: caught here, before datasets logs it
        try:
            pq.read_metadata(str(f))
        except Exception as exc:
            raise refuse(f, exc) from exc
    try:
        return datasets.Dataset.from_parquet([str(f) for f in files])
    except Exception as exc:
        for f in files:  # a damaged page: find the file at fault, to name it
            try:
                pq.read_table(str(f))
            except Exception as bad:
                raise refuse(f, bad) from bad
        raise DataError(f"cannot read the data files {[str(f) for f in files]}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    """The first line of the error's message; for datasets' "An error occurred while generating", its cause's."""
    from datasets.exceptions import DatasetGenerationError

    while isinstance(exc, DatasetGenerationError) and exc.__cause__ is not None:
        exc = exc.__cause__
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _file_has_no_rows(path: Path) -> bool:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_metadata(str(path)).num_rows == 0
        except Exception:
            return False
    text = path.read_text(errors="replace").strip()
    if path.suffix.lower() == ".csv":
        return len(text.splitlines()) <= 1
    return text in ("", "[]")


def _pick_split(loaded: Any, split: str, source: str) -> "Dataset":
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{source!r} has no split {split!r}", hint=f"available splits: {', '.join(loaded)}.")
        return loaded[split]
    return loaded


def write_output(
    ds: "Dataset | Mapping[str, Dataset]",
    out_dir: str | Path,
    run: "RunRecord | dict[str, Any] | None" = None,
    *,
    record: RunRecord | None = None,
    split: str = "train",
    extra: Callable[[Path], Any] | None = None,
) -> Path:
    """Write ``ds`` into ``out_dir`` with the run record (``hfevol_run.json``) beside it.

    The record is a :class:`~hfevol.record.RunRecord` (``record=``, or ``run``; a dict is read
    as one); it is written with each data file's path, sha256 and row count, which
    ``hfevol publish`` checks.

    Without a ``round`` column: ``<out>/data/<split>.parquet``. With one (the output of
    :func:`hfevol.evolve_rounds`): one folder per round, ``<out>/data/round_<r>/<split>.parquet``,
    all with the same schema. ``load_dataset(out, split="train")`` then reads every round and
    ``load_dataset(out, data_dir="data/round_2", split="train")`` one round; a release made by
    ``hfevol publish`` names each folder as a config (``round_2``). A mapping of config names
    to datasets (a ``DatasetDict``) is written one folder per config in the same way.

    No ``README.md`` with ``configs`` is written on purpose: for a local folder, ``datasets``
    (5.2) keys its cache on the configs' *patterns*, so a re-run into the same folder, or
    another output folder with the same name, would load the first one's cached rows.

    The whole output (data files, record, and whatever ``extra`` writes into the folder it
    is given, such as a plot) is written into a hidden folder beside ``out_dir`` and swapped
    in (:func:`hfevol.output_folder.staged`): a reader sees the previous output or this one,
    never a mix, and a failure leaves the previous output as it was. Other entries of an
    existing folder (the request cache in ``.hfevol-cache``) are kept. Returns the folder.

    Raises:
        OutputError: the folder cannot be written (full disk, read-only mount...).
        LockedError: another process is writing the same folder.
    """
    from .output_folder import staged

    out = Path(out_dir)
    if record is None:
        record = run if isinstance(run, RunRecord) else RunRecord.from_json(run or {"stages": []}, folder=out)
    parts = round_configs(ds) if not isinstance(ds, Mapping) else ds
    with staged(out) as staging:
        written: list[Path] = []
        for config, part in ({"": cast("Dataset", ds)} if parts is None else parts).items():  # parts is None only for one Dataset
            target = staging / "data" / config / f"{split}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            part.to_parquet(str(target))
            written.append(target)
        rows = sum(len(part) for part in parts.values()) if parts is not None else len(ds)
        # paths in the record are relative to the folder, so the same names hold once it is swapped in
        record.with_files([_file_record(staging, path) for path in written], rows=rows).write(staging)
        if extra is not None:
            extra(staging)
    return out


def _file_record(out: Path, path: Path) -> FileRecord:
    import pyarrow.parquet as pq

    from .publish.target import file_sha256

    return FileRecord(path.relative_to(out).as_posix(), file_sha256(path), pq.read_metadata(str(path)).num_rows)


def round_configs(ds: "Dataset") -> "DatasetDict | None":
    """One dataset per value of the ``round`` column, named ``round_1``, ``round_2`` ... (None without that column)."""
    from datasets import DatasetDict

    if "round" not in ds.column_names:
        return None
    numbers = sorted(set(ds["round"]))
    return DatasetDict({f"round_{r}": ds.filter(_in_round, input_columns=["round"], batched=True, fn_kwargs={"number": r}) for r in numbers})


def _in_round(rounds: list[int], number: int) -> list[bool]:
    return [r == number for r in rounds]
