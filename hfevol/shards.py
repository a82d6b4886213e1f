"""Deterministic shards: one contiguous slice of the input per process, driven by the global row index.

A job of N shards runs the same command N times with ``--num-shards N --shard-index I``
(``I`` in ``0 .. N-1``), each into its own ``--out``. Shard ``I`` reads the whole input and
keeps rows ``[start, stop)`` of it (:meth:`ShardSpec.bounds`, the layout of
``datasets.distributed.split_dataset_by_node``); every transform is given the row's *global*
index (the operation rotation, the per-row seed, the ``row-NNNNNN`` ids and the lineage's
``root_index`` come from it), so the union of the N outputs is row for row the unsharded
output. A finished shard's folder holds its record, with a ``shard`` entry, and the
completion marker :data:`MARKER_FILE`; both are swapped in with the data
(:func:`hfevol.io.write_output`), so a folder with the marker is complete.
``hfevol merge`` (:mod:`hfevol.merge`) joins the shards into one output.

Each shard keeps its own request cache (``<out>/.hfevol-cache/requests.sqlite``, or
``--cache``): keep it on a local disk. SQLite's locking (WAL mode) does not work over a
network file system.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from datasets import Dataset

MARKER_FILE = "hfevol_shard.json"
"""Completion marker of a shard's output folder (written with its data, atomically)."""


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` of ``count``. ``ShardSpec()`` is an unsharded run; ``ShardSpec(1, 0)`` a job of one shard
    (it still writes the shard entry and the completion marker, for ``hfevol merge`` and ``hfevol run``)."""

    count: int | None = None
    index: int = 0

    def __post_init__(self) -> None:
        if self.count is None:
            object.__setattr__(self, "count", 1)
            object.__setattr__(self, "_whole", True)
        if not isinstance(self.count, int) or isinstance(self.count, bool) or self.count < 1:
            raise ConfigError(f"--num-shards {self.count!r} must be an integer >= 1")
        if not isinstance(self.index, int) or isinstance(self.index, bool) or not 0 <= self.index < self.count:
            raise ConfigError(f"--shard-index {self.index!r} must be between 0 and {self.count - 1} (--num-shards {self.count})",
                              hint="shards are numbered from 0, as in a Slurm array --array=0-(N-1).")  # fmt: skip

    @property
    def shards(self) -> int:
        """How many shards the job has (1 for an unsharded run)."""
        return self.count or 1

    @property
    def sharded(self) -> bool:
        """A shard of a job (``--num-shards`` given), as opposed to an unsharded run."""
        return not getattr(self, "_whole", False)

    def bounds(self, total: int) -> tuple[int, int]:
        """``[start, stop)`` of this shard among ``total`` rows: contiguous, the first ``total % count`` shards one row longer."""
        size, extra = divmod(total, self.shards)
        start = self.index * size + min(self.index, extra)
        return start, start + size + (1 if self.index < extra else 0)

    def take(self, ds: "Dataset") -> tuple["Dataset", int]:
        """This shard's rows of ``ds`` and the global index of its first row."""
        if not self.sharded:
            return ds, 0
        start, stop = self.bounds(len(ds))
        return (ds, 0) if (start, stop) == (0, len(ds)) else (ds.select(range(start, stop)), start)

    def entry(self, total: int) -> dict[str, int]:
        """The record's ``shard`` entry (also the completion marker's content)."""
        start, stop = self.bounds(total)
        return {"num_shards": self.shards, "shard_index": self.index, "start": start, "stop": stop, "total_rows": total}


def add_shard_options(parser: argparse.ArgumentParser) -> None:
    """``--num-shards N --shard-index I``."""
    group = parser.add_argument_group("shards (one process of a job spread over several)")
    group.add_argument("--num-shards", type=int, default=None, metavar="N", help="split the input into N contiguous shards (default: no sharding)")
    group.add_argument("--shard-index", type=int, default=0, metavar="I",
                       help="run shard I (0 .. N-1) into its own --out; ids, seeds and operations follow the global row index")  # fmt: skip


def spec_from(args: argparse.Namespace) -> ShardSpec:
    """The shard the options name; with N > 1 shards, ``--max-in-flight`` (per endpoint, for the whole job) is divided by N."""
    spec = ShardSpec(getattr(args, "num_shards", None), getattr(args, "shard_index", 0))
    if spec.shards > 1 and getattr(args, "max_in_flight", None):
        per_job = int(args.max_in_flight)
        args.max_in_flight = max(1, per_job // spec.shards)
        args.max_in_flight_per_job = per_job
    return spec


def shard_extra(spec: ShardSpec, total: int, also: Callable[[Path], None] | None = None) -> Callable[[Path], None] | None:
    """The ``extra=`` writer of :func:`hfevol.io.write_output` that puts the completion marker into the staged folder,
    after ``also`` (the command's own files, e.g. a plot); ``also`` alone (None) unsharded."""
    if not spec.sharded:
        return also
    content = json.dumps(spec.entry(total), indent=2) + "\n"

    def mark(folder: Path) -> None:
        if also is not None:
            also(folder)
        (folder / MARKER_FILE).write_text(content)

    return mark


def read_marker(folder: str | Path) -> dict[str, int] | None:
    """The completion marker of a shard folder, or None when the shard has not finished."""
    path = Path(folder) / MARKER_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def is_complete(folder: str | Path) -> bool:
    from .record import RUN_FILE

    return read_marker(folder) is not None and (Path(folder) / RUN_FILE).is_file()


def with_shard(record: Any, spec: ShardSpec, total: int, *, first_stage: int) -> Any:
    """``record`` (a :class:`~hfevol.record.RunRecord`) with its ``shard`` entry: the slice, and the index of the
    first stage this command added (the stages before it come from the input's record). Unchanged unsharded."""
    if not spec.sharded:
        return record
    return record.with_extras(shard={**spec.entry(total), "first_stage": first_stage})


def finish_shard(record: Any, spec: ShardSpec, total: int, *, first_stage: int, also: Callable[[Path], None] | None = None) -> tuple[Any, Any]:
    """``(record, extra)`` for :func:`hfevol.io.write_output`: the record with its shard entry (:func:`with_shard`) and
    the writer of the completion marker after ``also`` (:func:`shard_extra`). What every sharded command ends with."""
    return with_shard(record, spec, total, first_stage=first_stage), shard_extra(spec, total, also)


__all__ = ["MARKER_FILE", "ShardSpec", "add_shard_options", "finish_shard", "is_complete", "read_marker", "shard_extra", "spec_from", "with_shard"]
