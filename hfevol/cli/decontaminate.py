"""``hfevol decontaminate``: flag prompts that share word n-grams with benchmark prompts, or (with ``--embedder``)
lie close to one in meaning; each flagged row names the benchmark row it matched.

``--against`` takes a file, a folder or a Hub id (its prompt column named by ``--against-column``),
or a recipe: ifeval, alpacaeval, mt-bench, arena-hard. No row is dropped; drop the flagged ones
afterwards with ``ds.filter(lambda r: not r["contam_flag"])``.
"""

from __future__ import annotations

import argparse
import time

from ..io import write_output
from ._claim import writes_output
from ._options import add_column_options, add_dataset_options, rows_from
from .dedup import add_flag_options, chained_record, embedder_from


def register(sub: argparse._SubParsersAction) -> None:
    from ..dedup.decontaminate import DEFAULT_NGRAM, DEFAULT_SEMANTIC_THRESHOLD

    p = sub.add_parser("decontaminate", help="flag prompts that match benchmark prompts", description=__doc__)
    add_dataset_options(
        p, required=True, dataset="an hfevol output folder, a file, a folder or a Hub id", out="output folder, in the input's layout, with the contam_* columns"
    )
    add_column_options(p, "instruction", "input")
    p.add_argument(
        "--against",
        action="append",
        required=True,
        metavar="DATASET",
        help="benchmark: a file, folder, Hub id or recipe (ifeval, alpacaeval, mt-bench, arena-hard); repeatable",
    )
    p.add_argument("--against-column", default="prompt", help="the benchmarks' prompt column, for those that are not recipes (default: prompt)")
    p.add_argument("--against-split", default="train", help="the benchmarks' split, for those that are not recipes (default: train)")
    p.add_argument(
        "--ngram", type=int, default=DEFAULT_NGRAM, help=f"words per n-gram (default: {DEFAULT_NGRAM}, as open decontamination scripts use; 13 is lm-eval's)"
    )
    p.add_argument(
        "--min-overlap", type=float, default=0.0, help="least share of a benchmark prompt's n-grams found in the row, in [0, 1] (default: 0, any shared n-gram)"
    )
    add_flag_options(p, semantic_threshold=DEFAULT_SEMANTIC_THRESHOLD)
    p.set_defaults(run=run)


@writes_output()
def run(args: argparse.Namespace) -> int:
    from ..dedup.benchmarks import load_prompts, resolve
    from ..dedup.common import check_fraction, check_int
    from ..dedup.decontaminate import DEFAULT_SEMANTIC_THRESHOLD, decontaminate

    check_int(args.ngram, "--ngram", low=1, high=64)
    check_fraction(args.min_overlap, "--min-overlap", open_low=False)
    check_int(args.map_batch_size, "--map-batch-size", low=1)
    embed, described, semantic_threshold = embedder_from(args, DEFAULT_SEMANTIC_THRESHOLD)
    benchmarks = [resolve(a, column=args.against_column, split=args.against_split) for a in args.against]
    for b in benchmarks:
        load_prompts(b)  # a missing column or an empty benchmark stops here, before the dataset is read
    started = time.perf_counter()
    ds = rows_from(args)
    flagged, stage = decontaminate(
        ds, benchmarks, instruction_column=args.instruction_column, input_column=args.input_column, ngram=args.ngram,
        min_overlap=args.min_overlap, embed=embed, embedder=described, semantic_threshold=semantic_threshold,
        batch_size=args.map_batch_size, num_proc=args.num_proc,
    )  # fmt: skip
    out = write_output(flagged, args.out, chained_record(args, "decontaminate", stage, ds))
    seconds = time.perf_counter() - started
    print(f"\n== decontaminate: {stage['flagged']} of {stage['rows']} rows flagged in {seconds:.1f} s (word {args.ngram}-grams"
          + (f", cosine >= {semantic_threshold:g}" if embed else "") + ")")  # fmt: skip
    for b in stage["benchmarks"]:
        print(f"   {b['name']:<20} {b['prompts']:>6} prompts   n-gram {b['flagged_ngram']:>5}   semantic {b['flagged_semantic']:>5}")
    print(f"   output: {out}   (drop the flagged rows: ds.filter(lambda r: not r['contam_flag']))")
    return 0
