"""``hfevol retry-failed``: run an output folder's ``hfevol evolve`` or ``hfevol respond`` again, sending only what failed.

The command that wrote the folder (the last one in its ``hfevol_run.json``) is rebuilt from
the typed run record: its parser's defaults, then the recorded options; endpoint options
given here (a new ``--endpoint``, a larger ``--retry-budget``...) replace them. Its input is
found where the record says (stored relative to the output folder, so this works from any
directory) or given again with ``--dataset``, and it must hold the rows the run read (same
digest): otherwise rows that succeeded would be replaced by answers to other rows. The run bypasses the ``datasets`` cache (which holds
the finished map, failed rows included) and goes through the same request cache, which
holds every completed request and no failed one, so rows that succeeded are answered from
the cache at no cost and only the failed requests, and the later-round rows that hang on
them, reach the model. The folder is rewritten in place, with a ``retries`` entry added to
its run record.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import ConfigError, DataError, DatasetNotFoundError
from ..io import read_parquet_files
from ..record import RUN_FILE, CommandRecord, RunRecord, rows_digest
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
    p.add_argument("--dataset", default=None, help="the run's input, when it is no longer where the record says (it must hold the same rows)")
    add_endpoint_options(p)
    p.set_defaults(run=run, header=None, **{name: None for name in _OVERRIDABLE})


def _failed_rows(out: Path, status_column: str) -> int:
    files = sorted(str(p) for p in (out / "data").rglob("*.parquet"))
    return sum(1 for s in read_parquet_files(files)[status_column] if s == "failed") if files else 0


def rebuild(command: CommandRecord, out: Path) -> argparse.Namespace:
    """The arguments of ``command`` as its own parser builds them, with the recorded options on top."""
    from . import build_parser

    needed = ["--dataset", "-"] if command.name == "respond" else []
    args = build_parser().parse_args([command.name, "--out", str(out), *needed])
    for name, value in command.options.items():
        if hasattr(args, name) and name not in ("run", "out", "header"):
            setattr(args, name, value)
    return args


def find_input(command: CommandRecord, given: str | None, stored: argparse.Namespace) -> str:
    """Where the run's input is now: ``given`` (``--dataset``), the recorded path, or its name (``builtin``, a Hub id);
    checked against the recorded digest before anything runs.

    Raises:
        DatasetNotFoundError: the input is not where the record says, and no ``--dataset``.
        DataError: the input does not hold the rows the run read.
    """
    from .evolve import read_seed_rows

    ref = command.input
    if ref is None:  # a record written before inputs were recorded: the option as typed, unchecked
        return given or stored.dataset
    if given is not None:
        where = given
    elif ref.path is not None:
        if not Path(ref.path).exists():
            raise DatasetNotFoundError(
                f"the input of `hfevol {command.name}`, {ref.name!r}, is not at {ref.path} (where the run record places it, relative to the output folder)",
                hint="give it again with --dataset PATH.",
            )
        where = ref.path
    else:
        where = ref.name
    if ref.data is not None and ref.data.digest is not None:
        stored.dataset = where
        rows = read_seed_rows(stored)
        if len(rows) != ref.data.rows or rows_digest(rows) != ref.data.digest:
            raise DataError(
                f"{where!r} is not the input that `hfevol {command.name}` read: {len(rows)} rows now, {ref.data.rows} then, and the content digest differs",
                hint="give the original data with --dataset; for the new data, run the command again instead of retry-failed.",
            )
    return where


@writes_output(option="the output folder")
def run(args: argparse.Namespace) -> int:
    import datasets

    from . import evolve as evolve_cmd
    from . import respond as respond_cmd

    out = Path(args.out)
    if not (out / RUN_FILE).is_file() or not (out / "data").is_dir():
        raise DatasetNotFoundError(f"{out} is not an hfevol output folder (no {RUN_FILE} or data/)", hint="give the --out folder of an earlier run.")
    record = RunRecord.read(out)
    command = record.last_command  # the one that wrote this folder (respond keeps the evolve record it read)
    if command is None or command.name not in ("evolve", "respond"):
        raise ConfigError(f"{out} was not written by `hfevol evolve` or `hfevol respond`; retry-failed supports those two")
    if command.options.get("no_cache", True):  # absent: written by a version without the request cache
        raise ConfigError(
            f"{out} was written without the request cache (--no-cache), so every row would be sent again", hint=f"run `hfevol {command.name}` again instead."
        )
    stored = rebuild(command, out)
    runner, status_column = (evolve_cmd.run, "evol_status") if command.name == "evolve" else (respond_cmd.run, f"{stored.output_column}_status")
    for name in _OVERRIDABLE:
        value = getattr(args, name, None)
        if value not in (None, False):
            setattr(stored, name, value)
    recorded = argparse.Namespace(header=None, header_names=command.options.get("header_names") or command.options.get("header") or [])
    stored.header = headers_again(recorded, args.header)
    stored.dataset = find_input(command, args.dataset, stored)

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
    retries = [*record.extras.get("retries", []), {"failed_before": before, "failed_after": after, "seconds": round(time.perf_counter() - started, 2)}]
    RunRecord.read(out).with_extras(retries=retries).write(out)
    print(f"\nretry-failed: {before} failed row(s) before, {after} now")
    return 0
