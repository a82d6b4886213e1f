"""The shape shared by every generation transform (evolve, respond, judge, ...).

A transform is a dataclass of settings. For a batch of rows it (1) builds one request per
row that needs the model and fills the columns of rows that do not, then (2) folds each
result into its row. :meth:`GenerationTransform.__call__` runs the requests synchronously
through ``backend.generate``; :meth:`GenerationTransform.acall` runs them concurrently
through ``backend.agenerate``, for ``ds.map(t.acall, batched=True)`` against an endpoint
(``datasets`` runs a bound ``async`` method natively).
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass
from typing import Any

from .backends.base import Backend, GenerationRequest, GenerationResult
from .errors import ConfigError

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
