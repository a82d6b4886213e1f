"""The shape shared by every generation transform (evolve, respond, judge, ...).

A transform is a dataclass of settings. For a batch of rows it (1) builds one request per
row that needs the model and fills the columns of rows that do not, then (2) folds each
result into its row. :meth:`GenerationTransform.__call__` runs the requests synchronously
through ``backend.generate``; :meth:`GenerationTransform.acall` runs them concurrently
through ``backend.agenerate``, for ``ds.map(t.acall, batched=True)`` against an endpoint
(``datasets`` runs a bound ``async`` method natively).

Two things keep ``datasets``' cache honest:

- **Explicit column types.** ``map`` infers a column's type from the first batch it writes; a
  column that is all None there (``evol_reason`` when every early row succeeded) becomes
  ``null`` and a later string crashes the write. Pass ``features=t.features_for(ds)``, or use
  :func:`map_rows`, which does.
- **Prompts in the fingerprint.** A transform pickles as its settings plus the content hash of
  every Jinja template it renders (:meth:`GenerationTransform.prompt_templates`), so editing a
  template changes the ``map`` fingerprint and the cached result is not reused.
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import prompts
from .backends.base import Backend, GenerationRequest, GenerationResult
from .errors import ConfigError
from .status import NOT_SENT_PREFIX, Status

if TYPE_CHECKING:
    from datasets import Dataset, Features

Batch = dict[str, list[Any]]


@dataclass
class Prepared:
    """Step (1)'s result: the output columns so far and the requests still to run."""

    out: Batch
    rows: list[int]
    """Position in the batch of each request below."""
    requests: list[GenerationRequest]


class GenerationTransform(abc.ABC):
    """Base of the map transforms that call a backend. Subclasses are dataclasses with a ``backend`` field."""

    backend: Backend

    def _check_backend(self) -> None:
        if not isinstance(self.backend, Backend):
            raise ConfigError(f"backend must be a hfevol Backend, got {type(self.backend).__name__}")

    @abc.abstractmethod
    def prepare(self, batch: Batch, indices: list[int] | None) -> Prepared:
        """Validate the batch, build the requests and fill what needs no model."""

    @abc.abstractmethod
    def apply(self, out: Batch, row: int, result: GenerationResult) -> None:
        """Write one result into row ``row`` of ``out``."""

    @abc.abstractmethod
    def metadata(self) -> dict[str, Any]:
        """Everything needed to reproduce this stage."""

    def output_features(self) -> dict[str, Any]:
        """The ``datasets`` type of every column this transform writes (override it: the default, ``{}``,
        leaves the types to ``map``'s inference from the first batch)."""
        return {}

    def prompt_templates(self) -> tuple[str, ...]:
        """Names of the templates this transform renders (``"folder/name"``)."""
        return ()

    def features_for(self, ds: "Dataset") -> "Features":
        """The features of ``ds.map(self, batched=True)``: the input's, with this transform's columns set."""
        from datasets import Features

        return Features({**ds.features, **self.output_features()})

    def __call__(self, batch: Batch, indices: list[int] | None = None) -> Batch:
        prepared = self.prepare(batch, indices)
        results = self.backend.generate(prepared.requests) if prepared.requests else []
        return self._finish(prepared, results)

    async def acall(self, batch: Batch, indices: list[int] | None = None) -> Batch:
        prepared = self.prepare(batch, indices)
        results = await asyncio.gather(*(self.backend.agenerate(r) for r in prepared.requests))
        return self._finish(prepared, list(results))

    async def amap(self, ds: Any, **map_kwargs: Any) -> Any:
        """``ds.map(self.acall, batched=True, with_indices=True, ...)`` from code that already runs an event loop.

        ``Dataset.map`` cannot run an async function inside a running loop (a Jupyter
        notebook is one), so this runs it in a worker thread, which gets its own loop:
        ``evolved = await evolve.amap(ds)``.
        """
        map_kwargs.setdefault("batched", True)
        map_kwargs.setdefault("with_indices", True)
        return await asyncio.to_thread(ds.map, self.acall, **map_kwargs)

    def _finish(self, prepared: Prepared, results: list[GenerationResult]) -> Batch:
        for row, result in zip(prepared.rows, results, strict=True):
            self.apply(prepared.out, row, result)
        return prepared.out

    # Settings only, plus the content hash of each template: that is what datasets fingerprints.
    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        state["_prompt_versions"] = {name: prompts.version(name) for name in self.prompt_templates()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("_prompt_versions", None)
        self.__dict__.update(state)


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
