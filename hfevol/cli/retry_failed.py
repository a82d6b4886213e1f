"""``hfevol retry-failed``: run an output folder's ``hfevol evolve`` or ``hfevol respond`` again, sending only what failed.

The options of the command that wrote the folder (the last one in its ``hfevol_run.json``)
are read back; endpoint options given here (a new ``--endpoint``, a larger
``--retry-budget``...) replace them. The run bypasses the ``datasets`` cache (which holds
the finished map, failed rows included) and goes through the same request cache, which
holds every completed request and no failed one, so rows that succeeded are answered from
the cache at no cost and only the failed requests, and the later-round rows that hang on
them, reach the model. The folder is rewritten in place, with a ``retries`` entry added to
its run record.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..errors import ConfigError, DatasetNotFoundError
from ..io import RUN_FILE, read_parquet_files, read_run_record
from ._claim import writes_output
from ._options import add_endpoint_options, headers_again

# Options of this command that replace the stored ones when given (their parser defaults are None/False here).
_OVERRIDABLE = (
    "endpoint", "endpoint_api", "endpoint_route", "endpoint_model", "tokenizer", "max_in_flight",
    "max_attempts", "retry_budget", "request_timeout", "token_env", "cache",
)  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retry-failed", help="re-run only the failed rows of an hfevol output folder", description=__doc__)
    p.add_argument("out", help="an output folder written by `hfevol evolve` or `hfevol respond`")
    add_endpoint_options(p)
    p.set_defaults(run=run, header=None, **{name: None for name in _OVERRIDABLE})


def _failed_rows(out: Path, status_column: str) -> int:
    files = sorted(str(p) for p in (out / "data").rglob("*.parquet"))
    return sum(1 for s in read_parquet_files(files)[status_column] if s == "failed") if files else 0


@writes_output(option="the output folder")
def run(args: argparse.Namespace) -> int:
    import datasets

    from . import evolve as evolve_cmd
    from . import respond as respond_cmd

    out = Path(args.out)
    record_path = out / RUN_FILE
    if not record_path.is_file() or not (out / "data").is_dir():
        raise DatasetNotFoundError(f"{out} is not an hfevol output folder (no {RUN_FILE} or data/)", hint="give the --out folder of an earlier run.")
    record = read_run_record(out)
    commands = record.get("commands") or [{}]
    command = commands[-1]  # the one that wrote this folder (respond keeps the evolve record it read)
    if command.get("command") not in ("evolve", "respond"):
        raise ConfigError(f"{out} was not written by `hfevol evolve` or `hfevol respond`; retry-failed supports those two")
    stored = argparse.Namespace(**command["options"])
    runner, status_column = (evolve_cmd.run, "evol_status") if command["command"] == "evolve" else (respond_cmd.run, f"{stored.output_column}_status")
    if getattr(stored, "no_cache", True):  # absent: written by a version without the request cache
        raise ConfigError(f"{out} was written without the request cache (--no-cache), so every row would be sent again", hint=f"run `hfevol {command['command']}` again instead.")
    for name in _OVERRIDABLE:
        value = getattr(args, name, None)
        if value not in (None, False):
            setattr(stored, name, value)
    stored.header = headers_again(stored, args.header)
    stored.out = str(out)

    before = _failed_rows(out, status_column)
    if not before:
        print(f"{out}: no failed rows, nothing to do")
        return 0
    started = time.perf_counter()
    # Not from the datasets cache: it holds the finished map, failed rows included. The
    # request cache answers the rows that succeeded; only the failed ones reach the model.
    datasets.disable_caching()
    try:
        runner(stored)
    finally:
        datasets.enable_caching()
    after = _failed_rows(out, status_column)
    new_record = json.loads(record_path.read_text())
    new_record["retries"] = [*record.get("retries", []), {"failed_before": before, "failed_after": after, "seconds": round(time.perf_counter() - started, 2)}]
    record_path.write_text(json.dumps(new_record, indent=2, ensure_ascii=False, default=str) + "\n")
    print(f"\nretry-failed: {before} failed row(s) before, {after} now")
    return 0
