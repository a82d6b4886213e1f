"""The run record (``hfevol_run.json``): how the data of an output folder was made, stage by stage.

Every command *chains* the record of its input: ``hfevol respond --dataset evolved`` reads
``evolved/hfevol_run.json`` and appends its stage, so the record of the last folder of a
pipeline names every stage, its model, sampling, seed and prompt versions. In Python::

    record = RunRecord.start(seeds, source="builtin")           # or RunRecord.read(folder)
    evolved = evolve_rounds(seeds, evolver, 2)
    record = record.with_stages(round_stages(evolver, evolved, elimination=None))
    write_output(evolved, "out", record=record)                # lists each data file's sha256
    publish("out", version="v1")                               # refuses files that do not match

On disk every stage has the same shape (:class:`StageRecord`); a transform's ``metadata()``
returns that shape without the run's facts (input, counts, time). Local paths are stored
relative to the folder that holds the record, never as absolute paths. Header values and
tokens are never stored: options are kept through :func:`safe_options`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NotHfevolOutputError
from .record_stage import BackendInfo, DataInfo, DataRef, StageRecord, _version, rows_digest

if TYPE_CHECKING:
    from datasets import Dataset

SCHEMA_VERSION = 1
"""Version of the layout written by :meth:`RunRecord.to_json`; records without one are version 0 (read as well)."""

RUN_FILE = "hfevol_run.json"

__all__ = ["RUN_FILE", "SCHEMA_VERSION", "BackendInfo", "CommandRecord", "DataInfo", "DataRef", "FileRecord", "RunRecord", "StageRecord",
           "chained", "round_stages", "rows_digest", "safe_options"]  # fmt: skip


@dataclass(frozen=True)
class CommandRecord:
    """A command that wrote to this record: its name, its input, and the options that re-run it (:func:`safe_options`)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    input: DataRef | None = None

    def to_json(self, folder: Path | None) -> dict[str, Any]:
        out: dict[str, Any] = {"command": self.name, "options": dict(self.options)}
        return {**out, "input": self.input.to_json(folder)} if self.input else out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], folder: Path | None) -> "CommandRecord":
        inp = data.get("input")
        return cls(
            name=str(data.get("command", "?")),
            options=dict(data.get("options") or {}),
            input=DataRef.from_json(inp, folder) if isinstance(inp, Mapping) else None,
        )


_PATH_OPTIONS = ("dataset", "out", "cache", "model", "tokenizer", "scores")


def safe_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options fit for a record: header names only (never values), no absolute paths, no callables."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if callable(value):
            continue
        if key == "header":
            value = [str(h).partition(":")[0].strip() for h in value or []]
        elif key in _PATH_OPTIONS and isinstance(value, str) and os.path.isabs(os.path.expanduser(value)):
            value = os.path.relpath(os.path.expanduser(value))
        out[key] = value
    return out


@dataclass(frozen=True)
class FileRecord:
    """A data file of the output folder: its path there, sha256 and row count."""

    path: str
    sha256: str
    rows: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "rows": self.rows}


_RUN_FIELDS = ("schema_version", "hfevol_version", "seed_data", "rows", "default_config", "stages", "commands", "files")


@dataclass(frozen=True)
class RunRecord:
    """The record of an output folder. ``extras`` are the commands' summaries (``report``, ``summary``, ``retries`` ...),
    stored beside the fixed entries."""

    stages: tuple[StageRecord, ...] = ()
    commands: tuple[CommandRecord, ...] = ()
    seed_data: DataRef | None = None
    """The first stage's input."""
    files: tuple[FileRecord, ...] = ()
    rows: int | None = None
    default_config: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    hfevol_version: str = field(default_factory=_version)
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def start(cls, seeds: "Dataset", *, source: str, split: str = "train") -> "RunRecord":
        """A new record whose seed data is ``seeds``, read from ``source`` (a path, ``builtin`` or a Hub id)."""
        return cls(seed_data=DataRef.of(source, seeds, split=split))

    @classmethod
    def read(cls, folder: str | Path) -> "RunRecord":
        """The record of an output folder.

        Raises:
            NotHfevolOutputError: no record, not JSON, or not a run record.
        """
        path = Path(folder) / RUN_FILE
        hint = "give a folder written by an hfevol command (its --out)."
        if not path.is_file():
            raise NotHfevolOutputError(f"{str(folder)!r} is not an hfevol output: it has no {RUN_FILE}", hint=hint)
        damaged = "re-run the command that wrote the folder."
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            where = f" (line {exc.lineno}, column {exc.colno}: {exc.msg})" if isinstance(exc, json.JSONDecodeError) else ""
            raise NotHfevolOutputError(f"{str(path)!r} is not valid JSON{where}; the run record is truncated or damaged", hint=damaged) from None
        if not isinstance(data, dict):
            raise NotHfevolOutputError(f"{str(path)!r} is not an hfevol run record: it holds a JSON {type(data).__name__}, not an object", hint=damaged)
        if not isinstance(data.get("stages"), list):
            raise NotHfevolOutputError(f"{str(path)!r} is not an hfevol run record: it has no 'stages' list", hint=hint)
        try:
            return cls.from_json(data, folder=Path(folder))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise NotHfevolOutputError(f"{path} is not a readable hfevol run record: {exc!r}", hint=hint) from exc

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, folder: Path | None = None) -> "RunRecord":
        """Read a record of any schema version; ``folder`` resolves its relative paths."""
        data = dict(data)
        seed = data.pop("seed_data", None)
        source = data.pop("source", None)  # version 0: the seed as typed, and its row count
        seed_rows = data.pop("seed_rows", None) if seed is None else None
        if isinstance(seed, Mapping):
            seed_ref = DataRef.from_json(seed, folder)
        elif isinstance(source, str):
            local = source.startswith((".", "/", "~")) or source.count("/") != 1
            name = source if source.startswith("builtin") or not local else Path(source).name
            seed_ref = DataRef(name=name, data=DataInfo(int(seed_rows)) if seed_rows is not None else None)
        else:
            seed_ref = None
        return cls(
            stages=tuple(StageRecord.from_json(s) for s in data.pop("stages", []) if isinstance(s, Mapping)),
            commands=tuple(CommandRecord.from_json(c, folder) for c in data.pop("commands", None) or [] if isinstance(c, Mapping)),
            seed_data=seed_ref,
            files=tuple(FileRecord(str(f["path"]), str(f["sha256"]), int(f["rows"])) for f in data.pop("files", None) or []),
            rows=data.pop("rows", None),
            default_config=data.pop("default_config", None),
            hfevol_version=str(data.pop("hfevol_version", None) or "?"),
            schema_version=int(data.pop("schema_version", 0)),
            extras=data,
        )

    def to_json(self, folder: str | Path | None = None) -> dict[str, Any]:
        """The JSON object; ``folder`` (where it is written) makes local paths relative to it."""
        where = Path(folder) if folder is not None else None
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "hfevol_version": self.hfevol_version,
            "seed_data": self.seed_data.to_json(where) if self.seed_data else None,
            "rows": self.rows,
        }
        if self.default_config is not None:
            out["default_config"] = self.default_config
        out["stages"] = [s.to_json() for s in self.stages]
        out["commands"] = [c.to_json(where) for c in self.commands]
        out["files"] = [f.to_json() for f in self.files]
        clash = sorted(set(self.extras) & set(_RUN_FIELDS))
        if clash:
            raise ValueError(f"record extras must not be named {clash}")
        return {**out, **self.extras}

    def write(self, folder: str | Path) -> Path:
        """Write ``<folder>/hfevol_run.json`` (through a temporary file) and return its path."""
        path = Path(folder) / RUN_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(folder), indent=2, ensure_ascii=False, default=str) + "\n")
        tmp.replace(path)
        return path

    # -- building the next record ---------------------------------------------------------

    def with_stage(self, stage: StageRecord | Mapping[str, Any]) -> "RunRecord":
        """This record with ``stage`` (a StageRecord or a transform's ``metadata()``) appended."""
        return self.with_stages([stage])

    def with_stages(self, stages: Iterable[StageRecord | Mapping[str, Any]]) -> "RunRecord":
        added = tuple(s if isinstance(s, StageRecord) else StageRecord.from_json(s) for s in stages)
        return replace(self, stages=self.stages + added, hfevol_version=_version())

    def with_command(self, name: str, options: Mapping[str, Any], *, input: DataRef | None = None) -> "RunRecord":
        """This record with a command appended (its options through :func:`safe_options`)."""
        return replace(self, commands=self.commands + (CommandRecord(name, safe_options(options), input),))

    def with_extras(self, **extras: Any) -> "RunRecord":
        return replace(self, extras={**self.extras, **extras})

    def with_files(self, files: Iterable[FileRecord], *, rows: int | None = None) -> "RunRecord":
        return replace(self, files=tuple(files), rows=rows if rows is not None else self.rows)

    @property
    def last_command(self) -> CommandRecord | None:
        return self.commands[-1] if self.commands else None


def chained(source: str, ds: "Dataset", *, split: str = "train") -> RunRecord:
    """The record a command starts from: the record of ``source`` when it is an hfevol output folder
    (the chain continues), else a new record whose seed data is ``ds``."""
    if (Path(source).expanduser() / RUN_FILE).is_file():
        return RunRecord.read(Path(source).expanduser())
    return RunRecord.start(ds, source=source, split=split)


def chain_command(source: str, ds: "Dataset", command: str, options: Mapping[str, Any], stage: StageRecord, *, split: str = "train") -> RunRecord:
    """The record of ``source`` (:func:`chained`) with ``command``, which read ``ds`` from ``source``
    with these ``options``, and its ``stage`` (already :meth:`StageRecord.recorded`) appended."""
    ref = DataRef.of(source, split=split)
    record = chained(source, ds, split=split).with_command(command, options, input=DataRef(ref.name, ref.path, ref.split, stage.input))
    return record.with_stage(stage)


def round_stages(evolver: Any, evolved: "Dataset", *, elimination: Any = None, seeds: "Dataset | DataInfo | None" = None) -> list[StageRecord]:
    """One stage per round written by :func:`~hfevol.evolution.evolve_rounds`: the evolver's
    metadata for that round (with the elimination's in ``settings``), the round's input rows and
    its counts by ``evol_status``. ``seeds`` (round 1's input) gives that round its digest."""
    from .evolution.rounds import round_report

    report = round_report(evolved)["rounds"]
    stages = []
    previous_ok: int | None = None
    for r, entry in report.items():
        meta = replace(evolver, round=r).metadata()
        if elimination is not None:
            meta["elimination"] = elimination.metadata()
        if r == 1:
            read = seeds if isinstance(seeds, DataInfo) else DataInfo.of(seeds) if seeds is not None else DataInfo(entry["rows"])
        else:
            read = DataInfo(previous_ok if previous_ok is not None else entry["rows"])
        stages.append(StageRecord.from_json(meta).recorded(input=read, counts=entry["status"]))
        previous_ok = entry["status"].get("ok", 0)
    return stages
