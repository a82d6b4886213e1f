"""``hfevol install-metrics``: make ``evaluate.load("ic_ifd")`` (and the other shipped metrics) work by bare name, offline."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("install-metrics", help="copy hfevol's evaluate metrics into evaluate's modules cache", description=__doc__)
    p.add_argument("names", nargs="*", help="metrics to install (default: all that hfevol ships)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..metric_install import install_metrics

    installed = install_metrics(args.names or None)
    for name, path in installed.items():
        print(f"installed {name:<8} -> {path}")
    names = " or ".join(f'evaluate.load("{n}")' for n in installed)
    print(f"\nnow {names} works offline (set HF_EVALUATE_OFFLINE=1 to skip the Hub look-up).")
    return 0
