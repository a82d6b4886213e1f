"""``hfevol merge``: join the output folders of the shards of one job (``--num-shards N --shard-index I``)
into one output folder with one run record, ready for ``hfevol publish``."""

from __future__ import annotations

import argparse

from ._claim import writes_output


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="join the shard outputs of one job into one output", description=__doc__)
    p.add_argument("shards", nargs="+", metavar="DIR", help="the shard output folders (every shard of the job, in any order)")
    p.add_argument("--out", required=True, help="the merged output folder")
    p.set_defaults(run=run)


@writes_output()
def run(args: argparse.Namespace) -> int:
    from ..merge import merge_shards
    from ..record import RunRecord

    out = merge_shards(args.shards, args.out)
    record = RunRecord.read(out)
    print(f"merged {len(args.shards)} shard(s): {record.rows} rows in {len(record.files)} data file(s)")
    tokens = record.extras.get("tokens")
    for name, t in (tokens or {}).items() if isinstance(tokens, dict) else ():
        print(f"   tokens ({name}): {t.get('prompt', 0)} prompt + {t.get('completion', 0)} completion")
    print(f"   output: {out}")
    return 0
