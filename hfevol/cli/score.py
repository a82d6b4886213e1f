"""``hfevol score``: add IFD and IC-IFD (and their losses) to every row of a dataset."""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..io import BUILTIN_SAMPLE, load_rows, write_output
from ..scoring.construction import MODES
from ..scoring.ifd import IC_IFD_FORMS, IFD_FORMS
from ..validation import require_columns
from ._options import add_endpoint_options, add_model_options, backend_from, run_options

HISTOGRAM_FILE = "ic_ifd_histogram.png"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score instruction data with IFD and IC-IFD", description=__doc__)
    p.add_argument("--dataset", default=BUILTIN_SAMPLE, help=f"a file, a folder, a Hub id, or {BUILTIN_SAMPLE!r} (default)")
    p.add_argument("--split", default="train")
    p.add_argument("--out", required=True, help=f"output folder (data/train.parquet, hfevol_run.json, {HISTOGRAM_FILE})")
    p.add_argument("--instruction-column", default="instruction")
    p.add_argument("--input-column", default="input", help="optional; a missing column means no input (default: input)")
    p.add_argument("--output-column", default="output", help="the answer (default: output)")
    p.add_argument("--mode", default="reference", choices=MODES, help="reference: the paper's plain-text construction (default); chat: the chat template")
    p.add_argument("--ifd-form", default="loss_ratio", choices=IFD_FORMS, help="loss_ratio (default) or ppl_ratio (Superfiltering)")
    p.add_argument("--ic-ifd-form", default="ratio", choices=IC_IFD_FORMS, help="ratio (the paper's Eq. 2, default) or multiplicative")
    p.add_argument("--max-length", type=int, default=None, help="truncate longer sequences (default: the model's context)")
    p.add_argument("--limit", type=int, default=None, help="score only the first N rows")
    add_model_options(p)
    add_endpoint_options(p, resume=False)  # endpoint scoring reads prompt log-probs, outside the request cache
    p.set_defaults(run=run, batch_size=16)


def run(args: argparse.Namespace) -> int:
    from ..scoring.plot import histogram_png

    score = _scorer(args)
    ds = load_rows(args.dataset, split=args.split)
    if args.limit is not None:
        ds = ds.select(range(min(args.limit, len(ds))))
    require_columns(ds.column_names, args.instruction_column, args.output_column)
    if len(ds) == 0:
        raise DataError(f"{args.dataset!r} has no rows to score")
    from ..record import DataRef, StageRecord, chained

    stage = StageRecord.from_json(score.metadata())  # loads the model or checks the server before the progress bar starts
    model_name = stage.backend.served_model or stage.backend.model or "-"
    started = time.perf_counter()
    # a map batch spans several model batches, so length bucketing has rows to sort
    scored = ds.map(score, batched=True, batch_size=args.batch_size * 16, with_indices=True, desc="Scoring")
    seconds = time.perf_counter() - started
    rows = scored.select_columns(["ifd", "ic_ifd", "tokens_q", "tokens_a_given_q", "tokens_a", "score_status", "score_reason", "score_truncated"]).to_list()
    summary = _summary(rows)
    out = Path(args.out)
    stage = stage.recorded(input=ds, counts=summary["status"])
    assert stage.input is not None
    source = DataRef.of(args.dataset, split=args.split)
    record = chained(args.dataset, ds, split=args.split).with_command("score", run_options(args), input=DataRef(source.name, source.path, source.split, stage.input))
    write_output(scored, out, record=record.with_stage(stage).with_extras(summary=summary))
    plot = histogram_png(
        [r["ic_ifd"] for r in rows],
        out / HISTOGRAM_FILE,
        label=f"IC-IFD ({args.ic_ifd_form})",
        title=f"IC-IFD of {len(rows)} rows, scored by {model_name}",
    )
    _print_summary(summary, seconds, score, model_name, out, plot)
    return 0


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(name: str) -> float | None:
        values = [r[name] for r in rows if r[name] is not None and math.isfinite(r[name])]
        return sum(values) / len(values) if values else None

    return {
        "rows": len(rows),
        "status": dict(Counter(r["score_status"] for r in rows).most_common()),
        "mean_ifd": mean("ifd"),
        "mean_ic_ifd": mean("ic_ifd"),
        "truncated": sum(bool(r["score_truncated"]) for r in rows),
        "reasons": dict(Counter(r["score_reason"] for r in rows if r["score_reason"]).most_common()),
        "scored_tokens": sum(r["tokens_q"] + r["tokens_a_given_q"] + r["tokens_a"] for r in rows),
    }


def _scorer(args: argparse.Namespace) -> Any:
    """A local :class:`Score`, or an :class:`EndpointScore` when ``--endpoint`` is given (TGI, or vLLM with ``--endpoint-api openai``)."""
    from ..scoring import Score

    common = dict(
        mode=args.mode,
        ifd_form=args.ifd_form,
        ic_ifd_form=args.ic_ifd_form,
        instruction_column=args.instruction_column,
        input_column=args.input_column,
        output_column=args.output_column,
        max_length=args.max_length,
    )
    if not args.endpoint:
        return Score(model=args.model, batch_size=args.batch_size, dtype=args.dtype, device=args.device, **common)
    from ..scoring.endpoint import EndpointScore

    return EndpointScore(endpoint=backend_from(args), **common)


def _print_summary(summary: dict[str, Any], seconds: float, score: Any, model_name: str, out: Path, plot: Path | None) -> None:
    rate = summary["rows"] / max(seconds, 1e-9)
    tokens = summary["scored_tokens"] / max(seconds, 1e-9)
    print(f"\n== IFD / IC-IFD scoring: {summary['rows']} rows in {seconds:.1f} s ({rate:.2f} rows/s, {tokens:.0f} scored tokens/s)")
    where = f" through {', '.join(score.backend.urls)}" if hasattr(score, "backend") else ""
    print(f"   model {model_name}{where}, mode {score.mode}, ifd {score.ifd_form}, ic_ifd {score.ic_ifd_form}")
    for status, n in summary["status"].items():
        print(f"   {status:<14} {n:>6}")
    for name, label in (("mean_ifd", "mean IFD"), ("mean_ic_ifd", "mean IC-IFD")):
        value = summary[name]
        print(f"   {label:<14} {'-' if value is None else f'{value:.4f}':>10}   (over rows where it is defined)")
    if summary["truncated"]:
        print(f"   truncated      {summary['truncated']:>6}")
    if summary["reasons"]:
        print("   rows not ok, by reason:")
        for reason, n in list(summary["reasons"].items())[:8]:
            print(f"     {n:>5} × {reason}")
    if plot is not None:
        print(f"\n   histogram: {plot}")
    print(f"   output:    {out}")
