"""The contract every row transform keeps (generation, scoring, elimination), and the generation shape.

A row transform is a dataclass of settings, applied with ``datasets``' ``map`` to batches of
rows. :class:`RowTransform` holds what every one of them shares:

- **Declared columns.** :meth:`~RowTransform.input_columns` names the columns a transform
  needs (checked before any row runs), :meth:`~RowTransform.output_features` the type of
  every column it writes.
- **Rows it cannot use** are marked (``on_invalid="mark"``, with a status and a reason that
  names the column) or raise :class:`~hfevol.errors.InvalidRowError` naming the row
  (``on_invalid="raise"``); rows whose ``skip_unless`` status column is not ``ok`` are kept
  as ``skipped``.
- **One way to run it**: :meth:`~RowTransform.map` checks the columns, fixes the output
  types and runs ``acall`` when the model is an inference endpoint (every row of a batch in
  flight at once), ``__call__`` otherwise. ``await t.amap(ds)`` does the same from code that
  already runs an event loop (a notebook).
- **A record of itself**: :meth:`~RowTransform.metadata` returns the run record's stage
  shape (:class:`~hfevol.record.StageRecord`).

Two things keep ``datasets``' cache honest:

- **Explicit column types.** ``map`` infers a column's type from the first batch it writes; a
  column that is all None there (``evol_reason`` when every early row succeeded) becomes
  ``null`` and a later string crashes the write. :meth:`~RowTransform.map` and
  :func:`map_rows` pass the types; with a plain ``ds.map``, pass ``features=t.features_for(ds)``.
- **Settings in the fingerprint, prompts too.** A transform pickles as its settings (runtime
  state such as a loaded model lives in ``_`` attributes and is left out) plus the content
  hash of every Jinja template it renders (:meth:`~RowTransform.prompt_templates`), so
  editing a template changes the ``map`` fingerprint and the cached result is not reused.

A :class:`GenerationTransform` calls a :class:`~hfevol.backends.Backend`: for a batch it
(1) builds one request per row that needs the model and fills the columns of rows that do
not (:meth:`~GenerationTransform.prepare`), then (2) folds each result into its row
(:meth:`~GenerationTransform.apply`). ``__call__`` runs the requests through
``backend.generate``; ``acall`` runs them concurrently through ``backend.agenerate``.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from . import prompts
from .backends.base import Backend, GenerationRequest, GenerationResult, SamplingParams
from .errors import ConfigError, InvalidRowError
from .status import NOT_SENT_PREFIX, Status
from .validation import require_columns

if TYPE_CHECKING:
    from datasets import Dataset, Features

    from .backends.endpoint import EndpointBackend

Batch = dict[str, list[Any]]

ON_INVALID = ("mark", "raise")


def endpoint_behind(backend: Any) -> "EndpointBackend | None":
    """The inference endpoint behind ``backend`` (seen through every wrapper: the request cache, the token
    meter), or None for a local model."""
    from .backends.base import innermost
    from .backends.endpoint import EndpointBackend

    inner = innermost(backend) if backend is not None else None
    return inner if isinstance(inner, EndpointBackend) else None


class RowTransform(abc.ABC):
    """The base of every row transform; see the module docstring for the contract.

    Subclasses are dataclasses of settings. They declare their columns
    (:meth:`input_columns`, :meth:`output_features`), describe themselves (:meth:`metadata`),
    implement ``__call__(batch, indices=None)`` and call :meth:`check_settings` from
    ``__post_init__``. A transform that talks to a model through ``backend`` overrides
    :meth:`acall` to run a batch concurrently; :meth:`map` picks it for an endpoint.
    """

    stage: ClassVar[str] = "transform"
    """The stage's name in the run record (and in seed derivations)."""
    on_invalid: Literal["mark", "raise"] = "mark"
    """What to do with a row whose input is unusable: mark it ``invalid_input``, or raise."""
    skip_unless: str | None = None
    """A status column (optional): rows where it exists and is not ``ok`` are kept, as ``skipped``."""

    # -- what subclasses provide -----------------------------------------------------------

    @abc.abstractmethod
    def input_columns(self) -> tuple[str, ...]:
        """The columns every row must have (optional ones are named in the class docstring only)."""

    @abc.abstractmethod
    def output_features(self) -> dict[str, Any]:
        """The ``datasets`` type of every column this transform writes."""

    @abc.abstractmethod
    def metadata(self) -> dict[str, Any]:
        """Everything needed to reproduce this stage, in the run record's stage shape (:meth:`hfevol.record.StageRecord.describe`)."""

    @abc.abstractmethod
    def __call__(self, batch: Batch, indices: list[int] | None = None) -> Batch:
        """The output columns for one batch of rows."""

    async def acall(self, batch: Batch, indices: list[int] | None = None) -> Batch:
        """``__call__`` for an event loop; transforms that call an endpoint run the batch's requests concurrently."""
        return self(batch, indices)

    def prompt_templates(self) -> tuple[str, ...]:
        """Names of the templates this transform renders (``"folder/name"``)."""
        return ()

    # -- the shared machinery ----------------------------------------------------------------

    def check_settings(self) -> None:
        """Check the settings the contract owns (``on_invalid``, ``skip_unless``); raises ConfigError."""
        if self.on_invalid not in ON_INVALID:
            raise ConfigError(f"on_invalid={self.on_invalid!r} must be 'mark' or 'raise'")
        if self.skip_unless is not None and (not isinstance(self.skip_unless, str) or not self.skip_unless.strip()):
            raise ConfigError(f"skip_unless={self.skip_unless!r} must be None or a column name")

    def prompt_versions(self) -> dict[str, str]:
        """The content hash of each template, by its short name (the run record's ``prompt_versions``)."""
        return {name.split("/")[-1]: prompts.version(name) for name in self.prompt_templates()}

    def check_columns(self, columns: Sequence[str] | Batch) -> None:
        """Raise :class:`~hfevol.errors.MissingColumnError` for the first of :meth:`input_columns` that ``columns`` lacks."""
        require_columns(list(columns), *self.input_columns())

    @staticmethod
    def row_label(j: int, indices: Sequence[int] | None) -> int | str:
        """How an error names row ``j`` of a batch: its dataset index when known."""
        return indices[j] if indices is not None else f"#{j} of this batch"

    def invalid_reason(self, j: int, indices: Sequence[int] | None, column: str | None, problem: str) -> str:
        """The reason recorded for an unusable row; raises :class:`~hfevol.errors.InvalidRowError` instead under ``on_invalid="raise"``."""
        if self.on_invalid == "raise":
            raise InvalidRowError(self.row_label(j, indices), column, problem, hint="fix or filter the row, or use on_invalid='mark'.")
        return f"column {column!r}: {problem}" if column else problem

    def skip_gate(self, batch: Batch) -> Sequence[Any] | None:
        """The batch's ``skip_unless`` statuses, or None when the column is not set or absent."""
        return batch[self.skip_unless] if self.skip_unless and self.skip_unless in batch else None

    def skip_reason(self, verb: str, status: Any) -> str:
        """Why a row was skipped: ``"not <verb>: <skip_unless> is '<status>'"``."""
        return f"not {verb}: {self.skip_unless} is {status!r}"

    @property
    def uses_endpoint(self) -> bool:
        """Whether the model behind this transform is an inference endpoint (then :meth:`map` runs :meth:`acall`)."""
        return endpoint_behind(getattr(self, "backend", None)) is not None

    def features_for(self, ds: "Dataset") -> "Features":
        """The features of ``ds.map(self, batched=True)``: the input's, with this transform's columns set."""
        from datasets import Features

        return Features({**ds.features, **self.output_features()})

    def map(self, ds: "Dataset", **map_kwargs: Any) -> "Dataset":
        """Apply this transform to ``ds``: ``map_rows(ds, fn, self.output_features(), with_indices=True, **map_kwargs)``.

        The input columns are checked first, before any row runs; ``fn`` is :meth:`acall`
        when the model is an inference endpoint, the transform itself otherwise.

        Raises:
            MissingColumnError: ``ds`` lacks one of :meth:`input_columns`.
        """
        self.check_columns(ds.column_names)
        map_kwargs.setdefault("with_indices", True)
        fn = self.acall if self.uses_endpoint else self
        return map_rows(ds, fn, self.output_features(), **map_kwargs)

    async def amap(self, ds: "Dataset", **map_kwargs: Any) -> "Dataset":
        """:meth:`map` from code that already runs an event loop.

        ``Dataset.map`` cannot run an async function inside a running loop (a Jupyter
        notebook is one), so this runs it in a worker thread, which gets its own loop:
        ``evolved = await evolve.amap(ds)``.
        """
        return await asyncio.to_thread(self.map, ds, **map_kwargs)

    # Settings only, plus the content hash of each template: that is what datasets fingerprints.
    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        templates = self.prompt_templates()
        if templates:
            state["_prompt_versions"] = {name: prompts.version(name) for name in templates}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("_prompt_versions", None)
        self.__dict__.update(state)


@dataclass
class Prepared:
    """Step (1)'s result: the output columns so far and the requests still to run."""

    out: Batch
    rows: list[int]
    """Position in the batch of each request below."""
    requests: list[GenerationRequest]


class GenerationTransform(RowTransform):
    """Base of the row transforms that call a backend. Subclasses are dataclasses with a ``backend`` field (and usually ``sampling``)."""

    backend: Backend

    def check_settings(self) -> None:
        """The contract's checks, plus: ``backend`` is a hfevol Backend and ``sampling`` (when there is one) a SamplingParams."""
        super().check_settings()
        if not isinstance(self.backend, Backend):
            raise ConfigError(f"backend must be a hfevol Backend, got {type(self.backend).__name__}")
        sampling = getattr(self, "sampling", None)
        if sampling is not None and not isinstance(sampling, SamplingParams):
            raise ConfigError(f"sampling must be a SamplingParams, got {type(sampling).__name__}")

    def start(self, n: int) -> Prepared:
        """An empty step (1) for ``n`` rows: every output column all None, no request yet."""
        return Prepared(out={c: [None] * n for c in self.output_features()}, rows=[], requests=[])

    @abc.abstractmethod
    def prepare(self, batch: Batch, indices: list[int] | None) -> Prepared:
        """Validate the batch, build the requests and fill what needs no model."""

    @abc.abstractmethod
    def apply(self, out: Batch, row: int, result: GenerationResult) -> None:
        """Write one result into row ``row`` of ``out``."""

    def stage_settings(self) -> dict[str, Any]:
        """Entries of :meth:`metadata` particular to this transform (beside backend, sampling, seed, prompts)."""
        return {}

    def metadata(self) -> dict[str, Any]:
        """The run record's stage shape: backend identity, sampling, seed, prompt versions and :meth:`stage_settings`."""
        from .record import StageRecord

        sampling = getattr(self, "sampling", None)
        return StageRecord.describe(self.stage, backend=self.backend, sampling=sampling, seed=getattr(self, "seed", None),
                                    prompt_versions=self.prompt_versions(), **self.stage_settings())  # fmt: skip

    def __call__(self, batch: Batch, indices: list[int] | None = None) -> Batch:
        prepared = self.prepare(batch, indices)
        results = self.backend.generate(prepared.requests) if prepared.requests else []
        return self._finish(prepared, results)

    async def acall(self, batch: Batch, indices: list[int] | None = None) -> Batch:
        prepared = self.prepare(batch, indices)
        results = await asyncio.gather(*(self.backend.agenerate(r) for r in prepared.requests))
        return self._finish(prepared, list(results))

    def _finish(self, prepared: Prepared, results: list[GenerationResult]) -> Batch:
        for row, result in zip(prepared.rows, results, strict=True):
            self.apply(prepared.out, row, result)
        return prepared.out


def outcome(result: GenerationResult, text: str | None, max_new_tokens: int, problem: str | None = None) -> tuple[Status, str | None]:
    """The status and reason of one generation, given the text read from it and any problem reading it.

    ``not_sent`` (the token budget was used, :mod:`hfevol.budget`), ``failed`` (backend error or empty text), ``parse_failed`` (``problem``), ``truncated``
    (the reply hit ``max_new_tokens``; with a problem too, the reason names both) or ``ok``.
    """
    cut = f"stopped at max_new_tokens={max_new_tokens}"
    if not result.ok and (result.error or "").startswith(NOT_SENT_PREFIX):
        return "not_sent", result.error
    if not result.ok:
        return "failed", result.error
    if problem is not None:
        return ("truncated", f"{cut}: {problem}") if result.finish_reason == "length" else ("parse_failed", problem)
    if not text:
        return "failed", "the model returned an empty text"
    if result.finish_reason == "length":
        return "truncated", cut
    return "ok", None


def map_rows(ds: "Dataset", fn: Any, features: dict[str, Any], *, desc: str | None = None, index_offset: int = 0, **kwargs: Any) -> "Dataset":
    """``ds.map(fn, batched=True, ...)`` with the types of the columns ``fn`` writes fixed up front.

    ``features`` maps each written column to its ``datasets`` type; the other columns keep
    theirs (see the module docstring for why this matters). With ``with_indices=True``,
    ``index_offset`` is added to every index ``fn`` is given: a shard that starts at global row
    ``index_offset`` (:mod:`hfevol.shards`) gives each row its global index.
    """
    from datasets import Features

    removed = set(kwargs.get("remove_columns") or ())
    merged = Features({**{k: v for k, v in ds.features.items() if k not in removed}, **features})
    if index_offset and kwargs.get("with_indices"):
        fn, kwargs = with_index_offset(fn, index_offset, kwargs)
    return ds.map(fn, batched=True, features=merged, desc=desc, **kwargs)


def with_index_offset(fn: Any, offset: int, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``fn`` and ``map`` keyword arguments such that ``fn`` sees indices shifted by ``offset`` (async kept async)."""
    inner_kwargs = dict(kwargs.pop("fn_kwargs", None) or {})
    kwargs = {**kwargs, "fn_kwargs": {"_fn": fn, "_offset": offset, "_fn_kwargs": inner_kwargs}}
    return (_offset_async if asyncio.iscoroutinefunction(fn) else _offset_sync), kwargs


def _offset_sync(batch: Batch, indices: list[int], _fn: Any, _offset: int, _fn_kwargs: dict[str, Any]) -> Batch:
    return _fn(batch, [i + _offset for i in indices], **_fn_kwargs)


async def _offset_async(batch: Batch, indices: list[int], _fn: Any, _offset: int, _fn_kwargs: dict[str, Any]) -> Batch:
    return await _fn(batch, [i + _offset for i in indices], **_fn_kwargs)
