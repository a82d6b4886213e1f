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

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NotHfevolOutputError

if TYPE_CHECKING:
    from datasets import Dataset

SCHEMA_VERSION = 1
"""Version of the layout written by :meth:`RunRecord.to_json`; records without one are version 0 (read as well)."""

RUN_FILE = "hfevol_run.json"

_BACKEND_DETAILS = ("route", "dtype", "source", "server", "tokenizer", "top_n_tokens")
"""Entries of ``Backend.describe()`` kept beside the four fixed ones (no URLs, headers or cache paths)."""


def rows_digest(ds: "Dataset") -> str:
    """``sha256:<hex>`` of a dataset's rows: each row as sorted-key JSON, one per line (independent of chunking and file format)."""
    h = hashlib.sha256()
    for batch in ds.with_format("arrow").iter(batch_size=1000):
        for row in batch.to_pylist():
            h.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode())
            h.update(b"\n")
    return "sha256:" + h.hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _version() -> str:
    from . import __version__

    return __version__


@dataclass(frozen=True)
class BackendInfo:
    """The model behind a stage. ``served_model`` is the id an endpoint reports (None for a local model)."""

    kind: str = "none"
    model: str | None = None
    revision: str | None = None
    served_model: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, backend: Any) -> "BackendInfo":
        """From a :class:`~hfevol.backends.Backend` (through the request cache); loads the model or checks the server."""
        inner = getattr(backend, "backend", backend)
        desc = inner.describe()
        endpoint = "urls" in desc
        model = (getattr(inner, "model", None) or desc.get("model")) if endpoint else desc.get("model")
        return cls.from_description(desc, model=model, served_model=desc.get("model") if endpoint else None)

    @classmethod
    def from_description(cls, desc: Mapping[str, Any], *, model: Any = None, served_model: Any = None) -> "BackendInfo":
        """From a ``describe()`` dict (or an old record's ``backend``/``model`` entry)."""
        kind = desc.get("kind") or desc.get("backend") or "none"
        details = {k: _public(desc[k]) for k in _BACKEND_DETAILS if desc.get(k) is not None}
        details.update(desc.get("details") or {})
        return cls(kind=str(kind), model=_opt_str(_public(model if model is not None else desc.get("model"))), revision=_opt_str(desc.get("revision")),
                   served_model=_opt_str(served_model if served_model is not None else desc.get("served_model")), details=details)  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        out = {"kind": self.kind, "model": self.model, "revision": self.revision, "served_model": self.served_model}
        return {**out, "details": dict(self.details)} if self.details else out


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _public(value: Any) -> Any:
    """A local model or tokenizer folder by its name only: a record never holds an absolute local path."""
    return Path(value).name if isinstance(value, str) and os.path.isabs(value) else value


@dataclass(frozen=True)
class DataInfo:
    """A dataset's identity: its row count and :func:`rows_digest`."""

    rows: int
    digest: str | None = None

    @classmethod
    def of(cls, ds: "Dataset") -> "DataInfo":
        return cls(rows=len(ds), digest=rows_digest(ds))

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "digest": self.digest}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "DataInfo":
        return cls(rows=int(data["rows"]), digest=data.get("digest"))


@dataclass(frozen=True)
class DataRef:
    """Where a command read its input: ``name`` (``builtin``, a Hub id, or a local file's name),
    ``path`` (a local file or folder: absolute in memory, relative to the record's folder on disk),
    the split, and the content (:class:`DataInfo`) of the rows it used."""

    name: str
    path: str | None = None
    split: str = "train"
    data: DataInfo | None = None

    @classmethod
    def of(cls, source: str, ds: "Dataset | None" = None, *, split: str = "train") -> "DataRef":
        local = Path(source).expanduser()
        if source.startswith("builtin") or not local.exists():
            return cls(name=source, split=split, data=DataInfo.of(ds) if ds is not None else None)
        return cls(name=local.resolve().name, path=str(local.resolve()), split=split, data=DataInfo.of(ds) if ds is not None else None)

    def to_json(self, folder: Path | None) -> dict[str, Any]:
        path = self.path
        if path is not None and folder is not None:
            path = Path(os.path.relpath(path, folder.resolve())).as_posix()
        out: dict[str, Any] = {"name": self.name, "path": path, "split": self.split}
        return {**out, **self.data.to_json()} if self.data else out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], folder: Path | None) -> "DataRef":
        path = data.get("path")
        if path is not None and folder is not None:
            path = os.path.normpath(folder.resolve() / path)
        info = DataInfo.from_json(data) if data.get("rows") is not None else None
        return cls(name=str(data["name"]), path=path, split=str(data.get("split") or "train"), data=info)


_STAGE_FIELDS = ("stage", "backend", "sampling", "seed", "prompt_versions", "input", "counts", "hfevol_version", "time")


@dataclass(frozen=True)
class StageRecord:
    """One stage, in the shape every stage shares. ``settings`` holds what is particular to it
    (``round``, ``operations``, ``mode`` ...); on disk they sit beside the fixed entries."""

    stage: str
    backend: BackendInfo = field(default_factory=BackendInfo)
    sampling: dict[str, Any] | None = None
    seed: int | None = None
    prompt_versions: dict[str, str] = field(default_factory=dict)
    input: DataInfo | None = None
    """The rows the stage read."""
    counts: dict[str, int] = field(default_factory=dict)
    """Rows by status after the stage."""
    hfevol_version: str = field(default_factory=_version)
    time: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clash = sorted(set(self.settings) & set(_STAGE_FIELDS))
        if clash:
            raise ValueError(f"stage settings must not be named {clash}")

    @classmethod
    def describe(cls, stage: str, *, backend: Any = None, sampling: Any = None, seed: int | None = None,
                 prompt_versions: Mapping[str, str] | None = None, **settings: Any) -> dict[str, Any]:  # fmt: skip
        """What a transform's ``metadata()`` returns: this shape, without input, counts and time.
        ``backend`` is a Backend, a :class:`BackendInfo` or None (a stage without a model)."""
        info = backend if isinstance(backend, BackendInfo) else BackendInfo.of(backend) if backend is not None else BackendInfo()
        sampling = sampling.to_dict() if hasattr(sampling, "to_dict") else sampling
        return cls(stage, info, sampling, seed, dict(prompt_versions or {}), settings=settings).to_json()

    def recorded(self, *, input: "Dataset | DataInfo | None" = None, counts: Mapping[str, int] | None = None) -> "StageRecord":
        """This stage with the run's facts: what it read, its counts by status, the time."""
        if input is not None and not isinstance(input, DataInfo):
            input = DataInfo.of(input)
        return replace(self, input=input, counts={str(k): int(v) for k, v in (counts or {}).items()}, time=_now(), hfevol_version=_version())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stage": self.stage, "backend": self.backend.to_json(), "sampling": self.sampling, "seed": self.seed,
                               "prompt_versions": dict(self.prompt_versions), **self.settings}  # fmt: skip
        if self.input is not None:
            out["input"] = self.input.to_json()
        if self.counts:
            out["counts"] = dict(self.counts)
        out["hfevol_version"] = self.hfevol_version
        if self.time is not None:
            out["time"] = self.time
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "StageRecord":
        """Read a stage, typed or as older versions wrote it (``model`` instead of ``backend``, no input)."""
        data = dict(data)
        backend = data.pop("backend", None)
        if not isinstance(backend, Mapping) and isinstance(data.get("model"), Mapping):
            backend = {"kind": "endpoint" if "endpoint" in data else "transformers", **data.pop("model")}  # version 0 score stages
        served = data.get("endpoint") if isinstance(data.get("endpoint"), Mapping) else {}
        info = BackendInfo.from_description(backend or {}, served_model=served.get("model"))
        inp = data.pop("input", None)
        return cls(
            stage=str(data.pop("stage", "-")),
            backend=info,
            sampling=data.pop("sampling", None),
            seed=data.pop("seed", None),
            prompt_versions=dict(data.pop("prompt_versions", None) or {}),
            input=DataInfo.from_json(inp) if isinstance(inp, Mapping) else None,
            counts=dict(data.pop("counts", None) or {}),
            hfevol_version=str(data.pop("hfevol_version", None) or "?"),
            time=data.pop("time", None),
            settings=data,
        )


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
        return cls(name=str(data.get("command", "?")), options=dict(data.get("options") or {}), input=DataRef.from_json(inp, folder) if isinstance(inp, Mapping) else None)


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
        try:
            data = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise NotHfevolOutputError(f"{path} is not valid JSON: {exc}", hint=hint) from exc
        if not isinstance(data, dict) or not isinstance(data.get("stages"), list):
            raise NotHfevolOutputError(f"{path} is not an hfevol run record: it has no 'stages' list", hint=hint)
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
