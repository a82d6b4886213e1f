"""``hfevol evolve``: one round of Evol-Instruct over a dataset."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..evolution import ALL_OPERATIONS, BREADTH_OPERATION, EvolInstruct
from ..io import BUILTIN_SAMPLE, load_rows, write_output
from ._options import add_model_options, add_sampling_options, backend_from, sampling_from
from ..validation import require_columns
from ._report import print_summary


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
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    operations = [op for op in args.operations if not (args.no_breadth and op == BREADTH_OPERATION)]
    evolve = EvolInstruct(
        backend=backend_from(args),
        operations=tuple(operations),
        round=args.round,
        sampling=sampling_from(args),
        seed=args.seed,
        instruction_column=args.instruction_column,
    )
    ds = load_rows(args.dataset, split=args.split)
    if args.limit is not None:
        ds = ds.select(range(min(args.limit, len(ds))))
    require_columns(ds.column_names, args.instruction_column)
    evolve.backend.describe()  # loads the model now: a bad --model fails before any row is processed
    started = time.perf_counter()
    evolved = ds.map(
        evolve,
        batched=True,
        batch_size=max(args.batch_size, 1) * 2,
        with_indices=True,
        desc=f"Evolving round {args.round}",
    )
    seconds = time.perf_counter() - started
    run_record = {"hfevol_version": __import__("hfevol").__version__, "source": args.dataset, "rows": len(evolved), "stages": [evolve.metadata()]}
    path = write_output(evolved, args.out, run_record)
    print_summary(
        f"Evol-Instruct round {args.round}",
        evolved.to_list(),
        status_column="evol_status",
        reason_column="evol_reason",
        before="parent_instruction",
        after="evolved_instruction",
        out=Path(path).parent.parent,
        seconds=seconds,
    )
    return 0
