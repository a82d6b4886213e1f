"""``hfevol dedup``: flag exact, near (MinHash + LSH) and, with ``--embedder``, semantic duplicates of the prompts.

No row is dropped: each gets a cluster (``dup_cluster``) and ``dup_keep`` for its cluster's
representative (the first by earliest round, then highest IC-IFD, then row order). Keep
one row per cluster afterwards with ``ds.filter(lambda r: r["dup_keep"])``.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from ..io import write_output
from ._claim import writes_output
from ._options import add_column_options, add_dataset_options, rows_from, run_options

if TYPE_CHECKING:
    from datasets import Dataset

    from ..record import RunRecord


def register(sub: argparse._SubParsersAction) -> None:
    from ..dedup.dedup import DEFAULT_SEMANTIC_THRESHOLD, DEFAULT_THRESHOLD
    from ..dedup.minhash import DEFAULT_NGRAM, DEFAULT_NUM_PERM

    p = sub.add_parser("dedup", help="flag duplicate and near-duplicate prompts as clusters", description=__doc__)
    add_dataset_options(
        p,
        required=True,
        dataset="an hfevol output folder (all rounds at once), a file, a folder or a Hub id",
        out="output folder, in the input's layout, with the dup_* columns",
    )
    add_column_options(p, "instruction", "input")
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"estimated Jaccard of word n-gram sets for a near-duplicate, in (0, 1] (default: {DEFAULT_THRESHOLD})",
    )
    p.add_argument("--ngram", type=int, default=DEFAULT_NGRAM, help=f"words per n-gram (default: {DEFAULT_NGRAM})")
    p.add_argument("--num-perm", type=int, default=DEFAULT_NUM_PERM, help=f"MinHash signature size (default: {DEFAULT_NUM_PERM})")
    add_flag_options(p, semantic_threshold=DEFAULT_SEMANTIC_THRESHOLD)
    p.add_argument(
        "--score-column", default="ic_ifd", help="the score that orders a cluster's rows within a round, highest first (default: ic_ifd, when present)"
    )
    p.set_defaults(run=run)


def add_flag_options(p: argparse.ArgumentParser, *, semantic_threshold: float) -> None:
    """Options both flagging commands take: the embedder and its threshold, and the map's batch size and processes."""
    p.add_argument("--embedder", default=None, help="turns on semantic matching: minilm (all-MiniLM-L6-v2 from PyPI), mpnet, a folder or a Hub id")
    p.add_argument(
        "--semantic-threshold", type=float, default=None, help=f"cosine for a semantic match, in (0, 1] (default: {semantic_threshold}); needs --embedder"
    )
    p.add_argument("--embed-batch-size", type=int, default=64, help="texts per embedder forward pass (default: 64)")
    p.add_argument("--device", default="auto", help="embedder device: auto, cpu or cuda[:N]")
    p.add_argument("--map-batch-size", type=int, default=1000, help="rows per datasets.map batch (flags do not depend on it; default: 1000)")
    p.add_argument("--num-proc", type=int, default=None, help="processes for datasets.map (flags do not depend on it)")


def embedder_from(args: argparse.Namespace, default_threshold: float) -> tuple[Any, dict[str, Any] | None, float]:
    """``(embed, description, semantic threshold)``; the embedder is loaded now, before any row is read.

    Raises:
        ConfigError: ``--semantic-threshold`` without ``--embedder``, or out of range.
    """
    from ..dedup.common import check_fraction
    from ..errors import ConfigError

    threshold = check_fraction(default_threshold if args.semantic_threshold is None else args.semantic_threshold, "--semantic-threshold")
    if args.embedder is None:
        if args.semantic_threshold is not None:
            raise ConfigError(
                "--semantic-threshold asks for a semantic check, which needs an embedder",
                hint="add --embedder minilm (pip install 'hfevol[analysis]'), or drop --semantic-threshold.",
            )
        return None, None, threshold
    from ..dedup.neighbours import load_embedder

    embed, described = load_embedder(args.embedder, batch_size=args.embed_batch_size, device=args.device)
    return embed, described, threshold


def chained_record(args: argparse.Namespace, command: str, stage: dict[str, Any], ds: "Dataset") -> "RunRecord":
    """The input's run record (when ``--dataset`` is an hfevol output folder) with this command and stage appended."""
    from ..record import StageRecord, chain_command

    return chain_command(args.dataset, ds, command, run_options(args), StageRecord.from_json(stage).recorded(input=ds), split=args.split)


@writes_output()
def run(args: argparse.Namespace) -> int:
    from ..dedup.common import check_fraction, check_int
    from ..dedup.dedup import DEFAULT_SEMANTIC_THRESHOLD, dedup

    check_fraction(args.threshold, "--threshold")
    check_int(args.ngram, "--ngram", low=1, high=64)
    check_int(args.num_perm, "--num-perm", low=16, high=1024)
    check_int(args.map_batch_size, "--map-batch-size", low=1)
    embed, described, semantic_threshold = embedder_from(args, DEFAULT_SEMANTIC_THRESHOLD)
    started = time.perf_counter()
    ds = rows_from(args)
    flagged, stage = dedup(
        ds, instruction_column=args.instruction_column, input_column=args.input_column, threshold=args.threshold, ngram=args.ngram,
        num_perm=args.num_perm, embed=embed, embedder=described, semantic_threshold=semantic_threshold, score_column=args.score_column,
        batch_size=args.map_batch_size, num_proc=args.num_proc,
    )  # fmt: skip
    out = write_output(flagged, args.out, chained_record(args, "dedup", stage, ds))
    seconds = time.perf_counter() - started
    f = stage["flagged"]
    print(f"\n== dedup: {stage['rows']} rows in {seconds:.1f} s; {stage['clusters']} clusters, {stage['kept']} representatives (dup_keep)")
    print(f"   exact duplicates     {f['exact']:>6}")
    print(f"   near (Jaccard >= {stage['near']['threshold']:g}) {f['near']:>5}")
    if stage["semantic"]:
        print(f"   semantic (cos >= {semantic_threshold:g}) {f['semantic']:>5}")
    print(f"   output: {out}   (keep one row per cluster: ds.filter(lambda r: r['dup_keep']))")
    return 0
