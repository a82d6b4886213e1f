"""``hfevol evolve``: rounds of Evol-Instruct (or Auto Evol-Instruct) over a dataset, with elimination,
on a local model or an inference endpoint."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..budget import add_budget_options, metered, print_tokens, record_tokens
from ..errors import ConfigError, EmptyDatasetError
from ..evolution import ALL_OPERATIONS, BREADTH_OPERATION, AutoEvolInstruct, Elimination, EvolInstruct, Evolver
from ..io import BUILTIN_SAMPLE, write_output
from ..shards import add_shard_options, finish_shard, spec_from
from ._claim import writes_output
from ._options import (
    add_column_options,
    add_dataset_options,
    add_generation_options,
    add_limit_option,
    endpoint_of,
    map_batch_size,
    mapping_from,
    request_backend_from,
    rows_from,
    run_options,
    sampling_from,
)
from ._report import print_endpoint_summary, print_rounds_summary

if TYPE_CHECKING:
    from datasets import Dataset

METHODS = ("evol-instruct", "auto-evol")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evolve", help="evolve instructions over several rounds", description=__doc__)
    add_dataset_options(
        p,
        dataset=f"a file, a folder, a Hub id, {BUILTIN_SAMPLE!r} (default) or 'builtin:<general|math|code>'",
        out="output folder: data/round_<r>/train.parquet per round, and hfevol_run.json",
    )
    add_column_options(p, "instruction", instruction="same as --map instruction=COLUMN")
    p.add_argument("--method", default="evol-instruct", choices=METHODS, help="evol-instruct (the operation rotation, default) or auto-evol")
    p.add_argument("--rounds", type=int, default=1, help="evolution rounds; each evolves the previous round's ok rows (default: 1)")
    p.add_argument(
        "--operations", nargs="+", default=list(ALL_OPERATIONS), metavar="OP", help=f"evol-instruct operations, a subset of: {' '.join(ALL_OPERATIONS)}"
    )
    p.add_argument("--no-breadth", action="store_true", help="drop the breadth operation (for math and code data)")
    p.add_argument("--no-elimination", action="store_true", help="keep failed evolutions as ok (elimination is on by default)")
    p.add_argument(
        "--record-top1",
        action="store_true",
        help="also record the evolver's top-1 token probabilities from the evolution call (columns top1_mean_k, top1_mean_all, top1_positions)",
    )
    p.add_argument("--top1-k", type=int, default=5, metavar="K", help="leading positions averaged in top1_mean_k (default: 5, as the paper's code)")
    add_limit_option(p, verb="evolve")
    add_generation_options(p, temperature=0.7, max_new_tokens=2048)
    add_shard_options(p)
    add_budget_options(p)
    p.set_defaults(run=run)


def build_evolver(args: argparse.Namespace, backend: Any = None) -> Evolver:
    """The evolution transform the options describe (round 1; ``evolve_rounds`` sets the others),
    on ``backend``, by default that of :func:`request_backend_from` (endpoint checked, request cache)."""
    from ..top1 import check_k

    k = check_k(getattr(args, "top1_k", 5), option="--top1-k")
    top1 = {"record_top1": True, "top1_k": k} if getattr(args, "record_top1", False) else {}
    common: dict[str, Any] = {
        "backend": backend if backend is not None else request_backend_from(args),
        "sampling": sampling_from(args),
        "seed": args.seed,
        **top1,
    }
    if args.method == "auto-evol":
        return AutoEvolInstruct(**common)
    operations = [op for op in args.operations if not (args.no_breadth and op == BREADTH_OPERATION)]
    return EvolInstruct(operations=tuple(operations), **common)


def load_seeds(args: argparse.Namespace) -> "Dataset":
    """Read ``--dataset``, apply ``--limit``, and bring it to the Alpaca layout (every check before any model call)."""
    from ..formats import to_alpaca

    return to_alpaca(read_seed_rows(args), mapping_from(args), format=args.format)


def read_seed_rows(args: argparse.Namespace) -> "Dataset":
    """``--dataset`` (its ``--split``) with ``--limit`` applied, as read: the rows whose digest the run record keeps."""
    ds = rows_from(args)
    if len(ds) == 0:
        raise EmptyDatasetError(f"dataset {args.dataset!r} (split {args.split!r}) has no rows", hint="check --dataset, --split and --limit.")
    return ds


@writes_output()
def run(args: argparse.Namespace) -> int:
    from ..evolution.rounds import evolve_rounds, round_report
    from ..formats import add_messages

    if args.rounds < 1:
        raise ConfigError(f"--rounds {args.rounds} must be at least 1", hint="use 1 to 3 rounds, as in the paper.")
    from ..formats import to_alpaca
    from ..record import RunRecord, round_stages

    spec = spec_from(args)
    rows = read_seed_rows(args)
    shard, offset = spec.take(rows)
    seeds = to_alpaca(shard, mapping_from(args), format=args.format)
    if getattr(args, "dry_run", False):
        from ..budget import NoSend, dry_run, prices_from, token_counter

        prices = prices_from(args.price_per_mtok)
        dry_run(build_evolver(args, NoSend()), seeds, index_offset=offset, counter=token_counter(args), passes=args.rounds).print("evolve", prices, args.rounds)
        return 0
    record = RunRecord.start(rows, source=args.dataset, split=args.split)
    evolver = build_evolver(args)
    evolver = replace(evolver, backend=metered(evolver.backend, args))
    elimination = None if args.no_elimination else Elimination()
    evolver.backend.describe()  # loads the model now: a bad --model fails before any row is processed
    if evolver.record_top1:
        from ..top1 import check_support

        check_support(evolver.backend, evolver.sampling)  # a server without log-probs fails here, before any row
    endpoint = endpoint_of(evolver.backend)
    started = time.perf_counter()
    evolved = evolve_rounds(
        seeds,
        evolver,
        args.rounds,
        elimination=elimination,
        batch_size=map_batch_size(args, endpoint),
        index_offset=offset,
    )
    evolved = add_messages(evolved)
    seconds = time.perf_counter() - started
    report = round_report(evolved)
    seed_data = record.seed_data
    assert seed_data is not None
    record = record.with_command("evolve", run_options(args), input=seed_data)
    record = record.with_stages(round_stages(evolver, evolved, elimination=elimination, seeds=seed_data.data))
    record = record.with_extras(rounds_requested=args.rounds, rounds_written=len(report["rounds"]), report=report)
    record, extra = finish_shard(record_tokens(record, evolver.backend), spec, len(rows), first_stage=0)
    out = write_output(evolved, args.out, record=record, extra=extra)
    title = "Auto Evol-Instruct" if args.method == "auto-evol" else "Evol-Instruct"
    print_rounds_summary(title, report, evolved, out=out, seconds=seconds)
    if endpoint is not None:
        print_endpoint_summary(endpoint.stats.snapshot(), cache_hits=getattr(evolver.backend, "hits", None))
    print_tokens(evolver.backend)
    failed = sum(r["status"].get("failed", 0) for r in report["rounds"].values())
    if failed:
        print(f"\n   {failed} row(s) failed; to run only those again: hfevol retry-failed {Path(args.out)}")
    return 0
