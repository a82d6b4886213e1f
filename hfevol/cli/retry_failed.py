"""``hfevol retry-failed``: run again only the rows of an output folder whose status is ``failed``.

The options of the original run are read from its ``hfevol_run.json``; endpoint options
given here (a new ``--endpoint``, a larger ``--retry-budget``...) replace them. Rows that
succeeded are kept as they are and cost no request. The output folder is rewritten in
place, with a ``retries`` entry added to its run record.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..errors import ConfigError, DatasetNotFoundError
from ..evolution.evol_instruct import OUTPUT_COLUMNS
from ..io import RUN_FILE
from ._options import add_endpoint_options

# Options of this command that replace the stored ones when given (their parser defaults are None/False here).
_OVERRIDABLE = (
    "endpoint", "endpoint_api", "endpoint_route", "endpoint_model", "tokenizer", "max_in_flight",
    "max_attempts", "retry_budget", "request_timeout", "token_env", "cache", "no_cache",
)  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retry-failed", help="re-run only the failed rows of an hfevol output folder", description=__doc__)
    p.add_argument("out", help="an output folder written by `hfevol evolve`")
    add_endpoint_options(p)
    p.set_defaults(run=run, header=None, **{name: None for name in _OVERRIDABLE if name != "no_cache"})


def run(args: argparse.Namespace) -> int:
    import datasets

    from . import evolve as evolve_cmd

    out = Path(args.out)
    record_path = out / RUN_FILE
    data_path = out / "data" / "train.parquet"
    if not record_path.is_file() or not data_path.is_file():
        raise DatasetNotFoundError(f"{out} is not an hfevol output folder (no {RUN_FILE} or data/train.parquet)", hint="give the --out folder of an earlier run.")
    record = json.loads(record_path.read_text())
    command = record.get("command") or {}
    if command.get("name") != "evolve":
        raise ConfigError(f"{out} was not written by `hfevol evolve`; retry-failed supports: evolve")
    stored = argparse.Namespace(**command["args"])
    for name in _OVERRIDABLE:
        value = getattr(args, name, None)
        if value not in (None, False):
            setattr(stored, name, value)
    if args.header:
        stored.header = args.header
    stored.out = str(out)

    ds = datasets.Dataset.from_parquet(str(data_path))
    failed = [i for i, status in enumerate(ds["evol_status"]) if status == "failed"]
    if not failed:
        print(f"{out}: no failed rows, nothing to do")
        return 0
    evolve = evolve_cmd.build_transform(stored)
    outputs = [c for c in ds.column_names if c in OUTPUT_COLUMNS]
    subset = ds.select(failed).remove_columns(outputs)
    started = time.perf_counter()
    redone = evolve_cmd.evolve_rows(subset, evolve, failed, batch_size=max(stored.batch_size, 1) * 2, desc=f"Retrying {len(failed)} failed rows")
    seconds = time.perf_counter() - started
    rows = ds.to_list()
    for position, row in zip(failed, redone.to_list(), strict=True):
        rows[position] = row
    merged = datasets.Dataset.from_list(rows, features=ds.features)
    still = sum(1 for i in failed if rows[i]["evol_status"] == "failed")
    record.setdefault("retries", []).append({"rows": len(failed), "still_failed": still, "stage": evolve.metadata(), "seconds": round(seconds, 2)})
    evolve_cmd.finish(evolve, merged, out, record, seconds, f"retry-failed: {len(failed)} row(s) run again")
    return 0
