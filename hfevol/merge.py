"""Join the output folders of the N shards of one job (:mod:`hfevol.shards`) into one output with one record.

:func:`merge_shards` checks, before reading a row, that every folder is a finished shard (its
completion marker and record), that the shards are ``0 .. N-1`` of one ``N`` with contiguous,
non-overlapping ranges that cover the input, and that their records describe one
configuration: the same record once the shard's own facts (its slice, row counts, data
files, times, output and cache paths) are left out. It then writes each config (``round_1``
...) as the shards' parts in shard order, which is the unsharded run's row order, through
:func:`hfevol.io.write_output` (atomic, locked), with one record whose counts are the sums
of the shards' and whose summaries are computed again from the merged rows. One data file per
config keeps a release far under the Hub's guideline of about 100 files per commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DataError
from .record import RunRecord, StageRecord
from .record_stage import DataInfo
from .shards import is_complete

if TYPE_CHECKING:
    from datasets import Dataset

_RUN_OPTIONS = {"shard_index", "out", "cache", "endpoint", "max_in_flight", "budget_tokens", "dry_run", "price_per_mtok"}
"""Command options that may differ between the shards of one job (where a shard writes, which replicas it uses)."""
_PER_SHARD_EXTRAS = {"shard", "report", "responses", "summary", "rounds_written", "tokens", "merged_from"}
"""Record extras that hold one shard's facts (counts, summaries): left out of the configuration check."""

MERGED_EXTRAS: dict[str, str] = {"score": "hfevol.cli.score:merged_extras"}
"""Per command: ``"module:function"`` of a function ``(rows, records) -> dict`` that computes the command's record
extras again over the merged ``rows`` (``records``: the shards' records, in shard order). A command whose summary is
not a sum of the shards' adds itself here, and the names of those extras to :data:`_PER_SHARD_EXTRAS`."""


def _merged_extras_of(name: str) -> Any:
    from importlib import import_module

    target = MERGED_EXTRAS.get(name)
    if target is None:
        return None
    module, _, function = target.partition(":")
    return getattr(import_module(module), function)


class _Shard:
    def __init__(self, folder: Path, record: RunRecord) -> None:
        self.folder, self.record = folder, record
        self.entry: dict[str, int] = dict(record.extras["shard"])


def check_shards(folders: Sequence[str | Path]) -> list[_Shard]:
    """The shards, in shard order, once every check holds.

    Raises:
        DataError: a folder is not a finished shard (it is named), the shards are not one
            job's (different counts, a missing or repeated index, overlapping or gapped
            ranges), or their records describe different configurations (the first
            difference is named).
    """
    if not folders:
        raise DataError("merge needs the shard folders", hint="hfevol merge out/shard-0 out/shard-1 ... --out out/merged")
    shards = []
    for folder in map(Path, folders):
        if not is_complete(folder):
            raise DataError(f"shard folder {str(folder)!r} is not complete: it has no completion marker (the shard has not finished)",
                            hint="run that shard again (the same command): it resumes from its request cache.")  # fmt: skip
        record = RunRecord.read(folder)
        if not isinstance(record.extras.get("shard"), Mapping):
            raise DataError(f"{str(folder)!r} has no shard entry in its record", hint="give folders written with --num-shards N --shard-index I.")
        shards.append(_Shard(folder, record))
    counts = {s.entry["num_shards"] for s in shards}
    if len(counts) != 1:
        raise DataError(f"the folders come from jobs of different shard counts {sorted(counts)}", hint="merge the shards of one job.")
    total = shards[0].entry["total_rows"]
    shards.sort(key=lambda s: (s.entry["shard_index"], s.entry["start"]))
    (n,) = counts
    position = 0
    for k, s in enumerate(shards):
        name = f"{str(s.folder)!r} (shard {s.entry['shard_index']} of {n}, rows {s.entry['start']}..{s.entry['stop'] - 1})"
        if s.entry["total_rows"] != total:
            raise DataError(f"{name} was cut from an input of {s.entry['total_rows']} rows, the others from {total}", hint="merge the shards of one job.")
        if s.entry["start"] < position:
            raise DataError(f"{name} overlaps the shard before it ({str(shards[k - 1].folder)!r})", hint="give each shard index once.")
        if s.entry["start"] > position or s.entry["shard_index"] != k:
            missing = k if s.entry["shard_index"] != k else s.entry["shard_index"] - 1
            raise DataError(f"shard {missing} of {n} is missing (rows from {position} are in no folder)", hint="run that shard and give its folder too.")
        position = s.entry["stop"]
    if len(shards) != n or position != total:
        raise DataError(
            f"shard {len(shards)} of {n} is missing (rows {position}..{total - 1} are in no folder)", hint="run that shard and give its folder too."
        )
    reference = configuration(shards[0].record)
    for s in shards[1:]:
        difference = _first_difference(reference, configuration(s.record))
        if difference is not None:
            raise DataError(f"{str(s.folder)!r} was made with another configuration than {str(shards[0].folder)!r}: {difference} differs",
                            hint="merge only shards of one command with the same options.")  # fmt: skip
    return shards


def configuration(record: RunRecord) -> dict[str, Any]:
    """The record without what belongs to one shard: what must be equal across the shards of one job."""
    data = record.to_json()
    for key in ("files", "rows", *_PER_SHARD_EXTRAS):
        data.pop(key, None)
    for stage in data.get("stages", []):
        for key in ("counts", "time", "hfevol_version"):
            stage.pop(key, None)
        if isinstance(stage.get("input"), dict) and stage["input"].get("digest") is None:
            stage.pop("input")  # a later round's input: that shard's surviving rows
    for command in data.get("commands", []):
        command["options"] = {k: v for k, v in command.get("options", {}).items() if k not in _RUN_OPTIONS and k != "max_in_flight_per_job"}
    return data


def _first_difference(a: Any, b: Any, where: str = "record") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            found = _first_difference(a.get(key), b.get(key), f"{where}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for k, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{where}[{k}]")
            if found is not None:
                return found
        return None
    return None if a == b else f"{where} ({a!r} vs {b!r})"


def _parts(shard: _Shard) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for f in shard.record.files:
        config = Path(f.path).parent.relative_to("data").as_posix() if Path(f.path).parent.as_posix() != "data" else ""
        out.setdefault("" if config == "." else config, []).append(shard.folder / f.path)
    return out


def merge_shards(folders: Sequence[str | Path], out: str | Path) -> Path:
    """Check the shards (:func:`check_shards`) and write them as one output folder ``out``; returns it."""
    from datasets import concatenate_datasets

    from .io import read_parquet_files, write_output

    shards = check_shards(folders)
    configs: dict[str, list["Dataset"]] = {}
    for s in shards:
        for config, files in _parts(s).items():
            configs.setdefault(config, []).append(read_parquet_files(list(files)))
    merged = {c: (parts[0] if len(parts) == 1 else concatenate_datasets(parts)) for c, parts in sorted(configs.items(), key=lambda kv: _config_key(kv[0]))}
    record = merged_record([s.record for s in shards], merged, [s.folder for s in shards])
    target = Path(out)
    if list(merged) == [""]:
        return write_output(merged[""], target, record=record)
    return write_output(merged, target, record=record)


def _config_key(name: str) -> tuple[int, str]:
    tail = name.rsplit("_", 1)[-1]
    return (int(tail), name) if tail.isdigit() else (1 << 30, name)


def merged_record(records: Sequence[RunRecord], merged: Mapping[str, "Dataset"], folders: Sequence[Path]) -> RunRecord:
    """One record for the merged rows: the first shard's, with the added stages' counts summed and the summaries recomputed."""
    first = records[0]
    start = int(first.extras["shard"].get("first_stage", 0))
    stages = list(first.stages[:start])
    for k in range(start, len(first.stages)):
        stages.append(_summed_stage([r.stages[k] for r in records]))
    extras = {k: v for k, v in first.extras.items() if k not in ("shard", "tokens")}
    extras.update(_summaries(first, records, merged))
    tokens = first.extras.get("tokens")
    if isinstance(tokens, Mapping) and first.last_command and first.last_command.name in tokens:
        name = first.last_command.name  # the earlier commands' counts came with the input: the same in every shard
        extras["tokens"] = {**tokens, name: _sum_values([r.extras["tokens"][name] for r in records])}
    extras["merged_from"] = {"num_shards": len(records), "shards": [f.name for f in folders]}
    commands = list(first.commands)
    if commands:
        last = commands[-1]
        commands[-1] = replace(last, options={k: v for k, v in last.options.items() if k not in ("shard_index", "out", "cache")})
    return replace(first, stages=tuple(stages), commands=tuple(commands), extras=extras)


def _summed_stage(stages: Sequence[StageRecord]) -> StageRecord:
    counts: dict[str, int] = {}
    for s in stages:
        for k, v in s.counts.items():
            counts[k] = counts.get(k, 0) + int(v)
    info = stages[0].input
    if info is not None and info.digest is None:
        info = DataInfo(sum(s.input.rows for s in stages if s.input is not None))
    return replace(stages[0], counts=counts, input=info)


def _summaries(first: RunRecord, records: Sequence[RunRecord], merged: Mapping[str, "Dataset"]) -> dict[str, Any]:
    """The command's summaries, computed again over every merged row (means cannot be summed)."""
    from datasets import concatenate_datasets

    rows = concatenate_datasets(list(merged.values())) if len(merged) > 1 else next(iter(merged.values()))
    name = first.last_command.name if first.last_command else ""
    out: dict[str, Any] = {}
    if "report" in first.extras and "evol_status" in rows.column_names:
        from .evolution.rounds import round_report

        out["report"] = round_report(rows)
        out["rounds_written"] = len(out["report"]["rounds"])
    recompute = _merged_extras_of(name)
    if recompute is not None:
        out.update(recompute(rows, records))
    for key in ("responses",):
        if key in first.extras:
            out[key] = _sum_values([r.extras.get(key) or {} for r in records])
    return out


def _sum_values(items: Sequence[Any]) -> Any:
    """Sum mappings of integers leaf by leaf (a leaf that is not an integer keeps the first value)."""
    if not items:
        return {}
    if all(isinstance(i, Mapping) for i in items):
        keys: list[Any] = []
        for i in items:
            keys += [k for k in i if k not in keys]
        return {k: _sum_values([i[k] for i in items if k in i]) for k in keys}
    if all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        return sum(items)
    return items[0]
