"""``hfevol prepare``: build the model cache once, so that later runs start in under a second."""

from __future__ import annotations

import argparse
import time

from ..models import EMBEDDED_MODEL, load_model


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="convert and cache the embedded model (or load any model once)", description=__doc__)
    p.add_argument("--model", default=EMBEDDED_MODEL, help=f"default: {EMBEDDED_MODEL!r}")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    loaded = load_model(args.model, device="cpu")
    n = sum(p.numel() for p in loaded.model.parameters())
    print(f"model {loaded.identity['model']} ready: {n / 1e6:.0f}M parameters, loaded in {time.perf_counter() - started:.1f} s")
    if args.model == EMBEDDED_MODEL:
        from ..models.embedded import cached_dir

        print(f"cache: {cached_dir()}")
    return 0
