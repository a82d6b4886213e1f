"""``hfevol analyze``: diversity (MND), difficulty and instruction reward of an evolved dataset, per row and per round."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..errors import ConfigError
from ..io import load_rows, write_output
from ._claim import writes_output
from ._options import run_options

NONE = "none"


def add_analysis_options(p: argparse.ArgumentParser) -> None:
    """Options shared with ``compare-evolvers``."""
    g = p.add_argument_group("analysis")
    g.add_argument("--embedder", default="auto", metavar="MODEL",
                   help="sentence-transformers model for MND: auto (all-mpnet-base-v2 if it loads, else minilm), minilm (offline, from PyPI), "
                        f"mpnet, a folder or a Hub id; {NONE!r} to skip MND")  # fmt: skip
    g.add_argument(
        "--mnd-form",
        choices=["squared_l2", "cosine"],
        default="squared_l2",
        help="squared L2 between unit vectors, 2 - 2cos (the paper's, default), or 1 - cos",
    )
    g.add_argument("--mnd-block", type=int, default=1024, help="query rows per block of the exact search (memory: rows x block)")
    g.add_argument("--judge", default=None, metavar="SPEC",
                   help="difficulty judge: a generator spec as for hfevol car (embedded, local:MODEL, http(s)://HOST, openai+http(s)://HOST/v1) "
                        "answering in words, or probs:SPEC for a local model read from its probabilities")  # fmt: skip
    g.add_argument("--judge-questions", nargs="+", choices=["level", "score"], default=["level", "score"], help="what a text judge is asked (default: both)")
    g.add_argument("--reward", default=None, metavar="MODEL", help="sequence-classification reward model for the instruction reward (optional)")
    g.add_argument("--reward-head", type=int, default=None, help="which output of a multi-output reward model is the reward")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="add MND, difficulty and reward columns to an evolved dataset", description=__doc__)
    p.add_argument("--dataset", required=True, help="an hfevol evolve output (or respond/score on top of it): a folder, a file or a Hub id")
    p.add_argument("--split", default="train")
    p.add_argument("--out", required=True, help="output folder: the data with the analysis columns, hfevol_run.json, evolvers.csv/.md and plots")
    p.add_argument("--label", default=None, help="the evolver's name in the table (default: the dataset's folder name)")
    p.add_argument("--batch-size", type=int, default=16)
    add_analysis_options(p)
    p.set_defaults(run=run)


def analysis_parts(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """Embedder, judge and reward from the options (each None when not asked for); nothing is loaded yet."""
    from ..analysis.difficulty import ProbabilityDifficultyJudge, TextDifficultyJudge
    from ..analysis.embed import Embedder
    from ..analysis.reward import InstructionReward
    from ..car.generators import backend_for, parse_generator

    if args.mnd_block < 1:
        raise ConfigError(f"--mnd-block {args.mnd_block} must be at least 1")
    embedder = None if args.embedder == NONE else Embedder(model=args.embedder, batch_size=max(args.batch_size, 1) * 4)
    judge = None
    if args.judge:
        probs = args.judge.startswith("probs:")
        spec = parse_generator(args.judge.removeprefix("probs:"))
        if spec.kind == "column":
            raise ConfigError(f"--judge {args.judge!r}: a judge must be a model or an endpoint, not a column")
        if probs and spec.kind != "local":
            raise ConfigError(
                f"--judge {args.judge!r}: the probability judge reads a local model's probabilities",
                hint="give probs:embedded or probs:local:PATH, or drop probs: for an endpoint.",
            )
        judge = (
            ProbabilityDifficultyJudge(model=spec.target, batch_size=args.batch_size)
            if probs
            else TextDifficultyJudge(backend=backend_for(spec, batch_size=args.batch_size), questions=tuple(args.judge_questions))
        )
    reward = InstructionReward(model=args.reward, reward_head=args.reward_head, batch_size=args.batch_size) if args.reward else None
    return embedder, judge, reward


def load_parts(embedder: Any, judge: Any, reward: Any) -> None:
    """Load every model now, so that a bad embedder, judge or reward model fails before any row is processed."""
    for part in (embedder, judge, reward):
        if part is not None:
            part.describe()


@writes_output()
def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..analysis import compare
    from ..analysis.analyze import analyze, check_evolved, round_summary
    from ..record import StageRecord, chain_command

    embedder, judge, reward = analysis_parts(args)
    ds = load_rows(args.dataset, split=args.split)
    check_evolved(ds.column_names, f"dataset {args.dataset!r}")
    load_parts(embedder, judge, reward)
    started = time.perf_counter()
    analysed, info = analyze(ds, embedder=embedder, judge=judge, reward=reward, form=args.mnd_form, block=args.mnd_block)
    seconds = time.perf_counter() - started
    summary = round_summary(analysed)
    stage = StageRecord.from_json(StageRecord.describe("analysis", **info)).recorded(input=ds)
    record = chain_command(args.dataset, ds, "analyze", run_options(args), stage, split=args.split).with_extras(
        analysis={"rounds": summary, "notes": info["notes"]}
    )
    label = args.label or Path(args.dataset.rstrip("/")).name or "evolver"
    written: dict[str, Path] = {}
    out = write_output(analysed, args.out, record, extra=lambda folder: written.update(compare.write({label: analysed}, folder)))
    print_analysis(label, summary, info, seconds)
    print(f"\n   table:  {Path(out) / compare.TABLE_MD}\n   output: {out}")
    return 0


def print_analysis(label: str, summary: dict[int, dict[str, Any]], info: dict[str, Any], seconds: float) -> None:
    from ..analysis.compare import markdown, table_rows

    print(f"\n== Analysis of {info['analysed_rows']} ok rows (of {info['rows']}) in {seconds:.1f} s")
    print_notes(None, info)
    print()
    print(markdown(table_rows({label: summary})))


def print_notes(label: str | None, info: dict[str, Any]) -> None:
    """What was measured and what could not be (unparsed judge replies, absent columns)."""
    if label is not None:
        print(f"   {label}: {info['analysed_rows']} ok rows of {info['rows']}")
    if "embedder" in info:
        print(f"   MND: {info['mnd']['form']} over {info['embedder']['model']} embeddings, within each round")
    if "judge" in info:
        unparsed = ", ".join(f"{q}: {n}" for q, n in info["judge_unparsed"].items())
        failed = sum(info["judge_failed"].values())
        print(f"   difficulty judge: {info['judge']['kind']}; unparsed replies {unparsed}" + (f"; failed {failed}" if failed else ""))
    for note in info["notes"]:
        print(f"   note: {note}")
