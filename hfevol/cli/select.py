"""``hfevol select``: keep the best rows of a scored dataset (the paper keeps the top 25% by IC-IFD)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..io import write_output
from ._claim import writes_output
from ._options import add_dataset_options, rows_from, run_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("select", help="keep the top rows of a scored dataset", description=__doc__)
    add_dataset_options(
        p,
        required=True,
        dataset="a scored dataset (the output folder of `hfevol score`, a file or a Hub id)",
        out="output folder (data/train.parquet + hfevol_run.json)",
    )
    p.add_argument("--by", default="ic_ifd", help="the score column (default: ic_ifd)")
    p.add_argument("--top", default="25%", help="a percentage (25%%), a share (0.25) or a count (100); default: 25%%")
    p.add_argument("--ascending", action="store_true", help="keep the lowest scores instead")
    p.add_argument("--drop-ifd-above-one", action="store_true", help="Cherry LLM's filter: drop rows with IFD > 1 before ranking")
    p.set_defaults(run=run)


@writes_output()
def run(args: argparse.Namespace) -> int:
    from ..record import StageRecord, chain_command
    from ..scoring.select import check_score_column, select

    started = time.perf_counter()
    ds = rows_from(args)
    check_score_column(ds, args.by, option="--by")
    kept, selection = select(ds, by=args.by, top=args.top, ascending=args.ascending, drop_ifd_above_one=args.drop_ifd_above_one, return_selection=True)
    out = Path(args.out)
    summary = selection.summary()
    counts = {"kept": len(kept), "not_kept": selection.total - len(kept)}
    stage = StageRecord.from_json(StageRecord.describe("select", by=args.by, **summary)).recorded(input=ds, counts=counts)
    write_output(kept, out, record=chain_command(args.dataset, ds, "select", run_options(args), stage, split=args.split))
    seconds = time.perf_counter() - started
    print(f"\n== select top {args.top} by {args.by}: kept {len(kept)} of {selection.total} rows in {seconds:.1f} s")
    print(f"   undefined score (never kept)  {selection.undefined:>6}")
    if args.drop_ifd_above_one:
        print(f"   dropped by IFD > 1 filter     {selection.dropped_ifd_above_one:>6}")
    print(f"   ranked                        {selection.eligible:>6}")
    if selection.threshold is not None:
        print(f"   {'highest' if args.ascending else 'lowest'} kept {args.by:<17}{selection.threshold:>10.4f}")
    print(f"   output: {out}")
    return 0
