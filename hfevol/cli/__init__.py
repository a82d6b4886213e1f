"""The ``hfevol`` command line. One module per command; shared options in ``_options``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import HfevolError
from . import (
    analyze,
    autoif,
    car,
    compare_evolvers,
    decontaminate,
    dedup,
    evolve,
    install_metrics,
    merge,
    prepare,
    publish,
    ray_run,
    releases,
    respond,
    retry_failed,
    run_recipe,
    score,
    select,
)

COMMANDS = (
    prepare,
    evolve,
    respond,
    score,
    select,
    run_recipe,
    retry_failed,
    merge,
    ray_run,
    publish,
    releases,
    install_metrics,
    car,
    autoif,
    analyze,
    compare_evolvers,
    dedup,
    decontaminate,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hfevol", description="Evolve seed instructions into instruction-tuning data.")
    parser.add_argument("--version", action="version", version=f"hfevol {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point. Known errors print as one line plus a hint; set HFEVOL_DEBUG=1 for tracebacks."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args) or 0)
    except HfevolError as exc:
        if os.environ.get("HFEVOL_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
