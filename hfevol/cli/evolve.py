"""``hfevol evolve``: one round of Evol-Instruct over a dataset, with a local model or an inference endpoint."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends.endpoint import EndpointBackend
from ..evolution import ALL_OPERATIONS, BREADTH_OPERATION, EvolInstruct
from ..io import BUILTIN_SAMPLE, load_rows, write_output
from ._options import add_endpoint_options, add_model_options, add_sampling_options, backend_from, cache_path_from, sampling_from
from ._report import print_endpoint_summary, print_summary

if TYPE_CHECKING:
    from datasets import Dataset

ENDPOINT_MAP_BATCH = 64
"""Rows per ``map`` batch against an endpoint: small enough for a lively progress bar; the concurrency comes from
the up to 1000 batches ``datasets`` runs at once, capped by the in-flight limit."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evolve", help="evolve instructions with Evol-Instruct", description=__doc__)
    p.add_argument("--dataset", default=BUILTIN_SAMPLE, help=f"a file, a folder, a Hub id, or {BUILTIN_SAMPLE!r} (default)")
    p.add_argument("--split", default="train")
    p.add_argument("--out", required=True, help="output folder (written as data/train.parquet + hfevol_run.json)")
    p.add_argument("--instruction-column", default="instruction")
    p.add_argument("--operations", nargs="+", default=list(ALL_OPERATIONS), metavar="OP", help=f"subset of: {' '.join(ALL_OPERATIONS)}")
    p.add_argument("--no-breadth", action="store_true", help="drop the breadth operation (for math and code data)")
    p.add_argument("--round", type=int, default=1, help="round number; it shifts the operation rotation (default: 1)")
    p.add_argument("--limit", type=int, default=None, help="evolve only the first N rows")
    add_model_options(p)
    add_sampling_options(p, temperature=0.7, max_new_tokens=2048)
    add_endpoint_options(p)
    p.set_defaults(run=run)


def build_transform(args: argparse.Namespace) -> EvolInstruct:
    """The transform the options describe; an endpoint is checked here, before any work (clear error if unreachable)."""
    from ..cache import CachedBackend

    backend = backend_from(args)
    if isinstance(backend, EndpointBackend):
        served = backend.check()
        print(f"endpoint: {backend.kind} serving {served['model']} (revision {served['revision'] or 'unknown'}) at {len(backend.urls)} URL(s)")
    cache = cache_path_from(args)
    if cache is not None:
        backend = CachedBackend(backend, str(cache))
    operations = [op for op in args.operations if not (args.no_breadth and op == BREADTH_OPERATION)]
    return EvolInstruct(
        backend=backend,
        operations=tuple(operations),
        round=args.round,
        sampling=sampling_from(args),
        seed=args.seed,
        instruction_column=args.instruction_column,
    )


def uses_endpoint(evolve: EvolInstruct) -> bool:
    backend = getattr(evolve.backend, "backend", evolve.backend)  # through CachedBackend
    return isinstance(backend, EndpointBackend)


def evolve_rows(ds: "Dataset", evolve: EvolInstruct, positions: Sequence[int] | None, *, batch_size: int, desc: str) -> "Dataset":
    """Map ``evolve`` over ``ds``; row ``j`` counts as position ``positions[j]`` (default: ``j``) for the rotation and seed."""
    where = list(positions) if positions is not None else None

    def place(indices: list[int]) -> list[int]:
        return indices if where is None else [where[i] for i in indices]

    if uses_endpoint(evolve):

        async def run_batch(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
            return await evolve.acall(batch, place(indices))

        return ds.map(run_batch, batched=True, batch_size=ENDPOINT_MAP_BATCH, with_indices=True, desc=desc)

    def run_batch_sync(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
        return evolve(batch, place(indices))

    return ds.map(run_batch_sync, batched=True, batch_size=batch_size, with_indices=True, desc=desc)


def command_record(args: argparse.Namespace) -> dict[str, Any]:
    """The options of this run, for ``hfevol retry-failed`` (no secret can be among them: tokens come from the environment)."""
    return {"name": "evolve", "args": {k: v for k, v in vars(args).items() if k != "run"}}


def finish(evolve: EvolInstruct, evolved: "Dataset", out: Path, record: dict[str, Any], seconds: float, title: str) -> None:
    path = write_output(evolved, out, record)
    print_summary(
        title,
        evolved.to_list(),
        status_column="evol_status",
        reason_column="evol_reason",
        before="parent_instruction",
        after="evolved_instruction",
        out=Path(path).parent.parent,
        seconds=seconds,
    )
    inner = getattr(evolve.backend, "backend", evolve.backend)
    if isinstance(inner, EndpointBackend):
        print_endpoint_summary(inner.stats.snapshot(), cache_hits=getattr(evolve.backend, "hits", None))
    failed = sum(1 for s in evolved["evol_status"] if s == "failed")
    if failed:
        print(f"\n   {failed} row(s) failed; to run only those again: hfevol retry-failed {out}")


def run(args: argparse.Namespace) -> int:
    evolve = build_transform(args)
    ds = load_rows(args.dataset, split=args.split)
    if args.limit is not None:
        ds = ds.select(range(min(args.limit, len(ds))))
    from ..validation import require_columns

    require_columns(ds.column_names, args.instruction_column)
    evolve.backend.describe()  # loads the model (an endpoint was checked above): a bad --model fails before any row
    started = time.perf_counter()
    evolved = evolve_rows(ds, evolve, None, batch_size=max(args.batch_size, 1) * 2, desc=f"Evolving round {args.round}")
    seconds = time.perf_counter() - started
    record = {
        "hfevol_version": __import__("hfevol").__version__,
        "source": args.dataset,
        "rows": len(evolved),
        "stages": [evolve.metadata()],
        "command": command_record(args),
    }
    finish(evolve, evolved, Path(args.out), record, seconds, f"Evol-Instruct round {args.round}")
    return 0
