"""``hfevol score``: add IFD and IC-IFD (and their losses) to every row of a dataset."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DataError, MissingColumnError
from ..extras import available, install_line
from ..io import BUILTIN_SAMPLE, write_output
from ..scoring.construction import MODES
from ..scoring.ifd import IC_IFD_FORMS, IFD_FORMS
from ..shards import add_shard_options, finish_shard, spec_from
from ..stats import finite_mean
from ._claim import writes_output
from ._options import add_column_options, add_dataset_options, add_endpoint_options, add_limit_option, add_model_options, backend_from, rows_from, run_options
from ._report import column_sum, value_counts

if TYPE_CHECKING:
    from datasets import Dataset

HISTOGRAM_FILE = "ic_ifd_histogram.png"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score instruction data with IFD and IC-IFD", description=__doc__)
    add_dataset_options(
        p, dataset=f"a file, a folder, a Hub id, or {BUILTIN_SAMPLE!r} (default)", out=f"output folder (data/train.parquet, hfevol_run.json, {HISTOGRAM_FILE})"
    )
    add_column_options(p, "instruction", "input", "output")
    p.add_argument("--mode", default="reference", choices=MODES, help="reference: the paper's plain-text construction (default); chat: the chat template")
    p.add_argument("--ifd-form", default="loss_ratio", choices=IFD_FORMS, help="loss_ratio (default) or ppl_ratio (Superfiltering)")
    p.add_argument("--ic-ifd-form", default="ratio", choices=IC_IFD_FORMS, help="ratio (the paper's Eq. 2, default) or multiplicative")
    p.add_argument("--max-length", type=int, default=None, help="truncate longer sequences (default: the model's context)")
    add_limit_option(p, verb="score")
    add_model_options(p)
    add_endpoint_options(p, resume=False)  # endpoint scoring reads prompt log-probs, outside the request cache
    add_shard_options(p)
    p.set_defaults(run=run, batch_size=16)


@writes_output()
def run(args: argparse.Namespace) -> int:
    from ..scoring.plot import histogram_png

    spec = spec_from(args)
    score = _scorer(args)
    full = rows_from(args)
    ds, offset = spec.take(full)
    for column, option in ((args.instruction_column, "--instruction-column"), (args.output_column, "--output-column")):
        if column not in ds.column_names:
            raise MissingColumnError(column, ds.column_names, hint=f"name the dataset's column with {option} COLUMN.")
    if len(full) == 0:
        raise DataError(f"{args.dataset!r} has no rows to score")
    from ..record import StageRecord, chain_command

    stage = StageRecord.from_json(score.metadata())  # loads the model or checks the server before the progress bar starts
    model_name = stage.backend.served_model or stage.backend.model or "-"
    started = time.perf_counter()
    # a map batch spans several model batches, so length bucketing has rows to sort
    scored = score.map(ds, batch_size=args.batch_size * 16, desc="Scoring", index_offset=offset)
    seconds = time.perf_counter() - started
    ic_ifd = scored["ic_ifd"]  # the one column the histogram draws
    summary = _summary(scored, ic_ifd)
    out = Path(args.out)
    stage = stage.recorded(input=full, counts=summary["status"])
    record = chain_command(args.dataset, full, "score", run_options(args), stage, split=args.split)
    drawn: list[Path | None] = []

    def draw(folder: Path) -> None:  # into the new output, before it is swapped in
        if not available("plots"):  # the summary says so; the scores are written all the same
            drawn.append(None)
            return
        drawn.append(histogram_png(
            ic_ifd,
            folder / HISTOGRAM_FILE,
            label=f"IC-IFD ({args.ic_ifd_form})",
            title=f"IC-IFD of {len(scored)} rows, scored by {model_name}",
        ))  # fmt: skip

    record, extra = finish_shard(record.with_extras(summary=summary), spec, len(full), first_stage=len(record.stages) - 1, also=draw)
    write_output(scored, out, record=record, extra=extra)
    plot = out / HISTOGRAM_FILE if drawn[0] is not None else None
    _print_summary(summary, seconds, score, model_name, out, plot)
    return 0


def merged_extras(rows: "Dataset", records: Any) -> dict[str, Any]:
    """The summary of merged shards, computed again over every row (:data:`hfevol.merge.MERGED_EXTRAS`)."""
    return {"summary": _summary(rows, rows["ic_ifd"])}


def _summary(scored: "Dataset", ic_ifd: list[float | None]) -> dict[str, Any]:
    """Counts and means over every row, read column by column (never the whole table as rows)."""
    reasons = value_counts(scored, "score_reason")
    return {
        "rows": len(scored),
        "status": dict(value_counts(scored, "score_status").most_common()),
        "mean_ifd": finite_mean(scored["ifd"]),
        "mean_ic_ifd": finite_mean(ic_ifd),
        "truncated": value_counts(scored, "score_truncated")[True],
        "reasons": {reason: n for reason, n in reasons.most_common() if reason},
        "scored_tokens": column_sum(scored, "tokens_q", "tokens_a_given_q", "tokens_a"),
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
    from ..backends.openai import OpenAIBackend
    from ..backends.tgi import TGIBackend
    from ..scoring.endpoint import EndpointScore

    endpoint = backend_from(args)
    assert isinstance(endpoint, (TGIBackend, OpenAIBackend))  # --endpoint is given
    return EndpointScore(endpoint=endpoint, **common)


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
    elif not available("plots"):
        print(f"\n   histogram: not drawn, matplotlib is not installed ({install_line('plots')})")
    print(f"   output:    {out}")
