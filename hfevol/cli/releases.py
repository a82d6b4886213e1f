"""``hfevol releases``: list the versions of a Hub dataset or of a local release folder."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("releases", help="list the releases of a Hub dataset or a local release folder", description=__doc__)
    p.add_argument("where", help="a Hub dataset 'user/name' or a local release folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..publish import list_releases

    releases = list_releases(args.where)
    print(f"{len(releases)} release(s) of {args.where}")
    for r in releases:
        print(f"   {r.version:<14} {r.commit[:12]}  {r.date or ''}  {r.title or ''}".rstrip())
    return 0
