"""The wrapper every command that writes an output folder runs in: checked writable and locked before any work."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

from ..output_folder import claimed
from ._options import cache_path_from

Command = Callable[[argparse.Namespace], int]


def writes_output(attr: str = "out", *, option: str = "--out") -> Callable[[Command], Command]:
    """Run the command with its output folder (``args.<attr>``) claimed: see :func:`hfevol.output_folder.claimed`.

    The folder is checked writable (one line naming ``option`` if not) and locked before
    the command loads a model or reads a row, and stays locked until it returns; the
    request cache (``--cache``), when the command has one outside the folder, is locked too.
    """

    def wrap(run: Command) -> Command:
        @functools.wraps(run)
        def claimed_run(args: argparse.Namespace) -> int:
            cache = cache_path_from(args) if hasattr(args, "no_cache") else None
            with claimed(getattr(args, attr), option=option, cache=cache):
                return run(args)

        return claimed_run

    return wrap
