"""The parts of a run record that describe data and stages: :class:`StageRecord` (one stage, in the
shape every stage shares), :class:`BackendInfo`, :class:`DataInfo`, :class:`DataRef`, and
:func:`rows_digest`. :mod:`hfevol.record` holds the record itself and re-exports these."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Dataset

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
        while hasattr(getattr(inner, "backend", None), "describe"):  # through the request cache and the token meter
            inner = inner.backend
        desc = inner.describe()
        endpoint = "urls" in desc
        model = (getattr(inner, "model", None) or desc.get("model")) if endpoint else desc.get("model")
        return cls.from_description(desc, model=model, served_model=desc.get("model") if endpoint else None)

    @classmethod
    def from_description(cls, desc: Mapping[str, Any], *, model: Any = None, served_model: Any = None) -> "BackendInfo":
        """From a ``describe()`` dict (or an old record's ``backend``/``model`` entry)."""
        kind = desc.get("kind") or desc.get("backend") or "none"
        details = {k: _public(desc[k]) for k in _BACKEND_DETAILS if desc.get(k) is not None}
        details.update(_public(desc.get("details") or {}))
        served = _public(served_model if served_model is not None else desc.get("served_model"))  # vLLM names a model by its folder's path
        return cls(kind=str(kind), model=_opt_str(_public(model if model is not None else desc.get("model"))), revision=_opt_str(desc.get("revision")),
                   served_model=_opt_str(served), details=details)  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        out = {"kind": self.kind, "model": self.model, "revision": self.revision, "served_model": self.served_model}
        return {**out, "details": dict(self.details)} if self.details else out


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _public(value: Any) -> Any:
    """A local model or tokenizer folder by its name only, also inside mappings and lists: a record never
    holds an absolute local path."""
    if isinstance(value, Mapping):
        return {k: _public(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_public(v) for v in value]
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
        endpoint = data.get("endpoint")
        served = endpoint if isinstance(endpoint, Mapping) else {}
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
