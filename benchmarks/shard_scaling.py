"""Throughput of one evolve job as 1, 2 and 4 shards in parallel processes, and the merged output against the single run.

The server is hfevol's TGI test server (echo engine) in its own process, with a fixed latency
and ``--slots`` slots, so its capacity is exactly ``slots / latency`` requests per second.
Each configuration runs ``hfevol evolve --num-shards N --shard-index I`` as N processes at
once, each with the whole job's ``--max-in-flight`` (= slots) divided by N, then
``hfevol merge``; the figures are requests per second over the wall time of the N processes,
as a fraction of the capacity, and whether the merged data files are byte-identical to the
single process's. Every run uses ``--no-cache`` and its own seed file, so no answer comes from
a cache.

    python benchmarks/shard_scaling.py --rows 2048 --latency 0.05 --slots 256
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from endpoint_throughput import start_server  # noqa: E402


def evolve(url: str, seeds: Path, out: Path, slots: int, shard: tuple[int, int] | None) -> list[str]:
    argv = [sys.executable, "-m", "hfevol.cli", "evolve", "--dataset", str(seeds), "--out", str(out), "--endpoint", url, "--max-new-tokens", "64",
            "--no-elimination", "--no-cache", "--max-in-flight", str(slots)]  # fmt: skip
    return argv + (["--num-shards", str(shard[0]), "--shard-index", str(shard[1])] if shard else [])


def data_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted((folder / "data").rglob("*.parquet"))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=2048)
    p.add_argument("--latency", type=float, default=0.05)
    p.add_argument("--slots", type=int, default=256)
    p.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    args = p.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    capacity = args.slots / args.latency
    proc, url = start_server(args.latency, args.slots)
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            single = None
            for n in args.shards:
                seeds = root / f"seeds-{n}.jsonl"  # its own file: datasets' map cache never serves a run
                seeds.write_text("".join(json.dumps({"instruction": f"Explain topic number {i} in two sentences."}) + "\n" for i in range(args.rows)))
                outs = [root / f"run-{n}" / f"shard-{i}" for i in range(n)]
                started = time.perf_counter()
                procs = [subprocess.Popen(evolve(url, seeds, out, args.slots, (n, i) if n > 1 else None), env=env, stdout=subprocess.DEVNULL)
                         for i, out in enumerate(outs)]  # fmt: skip
                codes = [q.wait() for q in procs]
                seconds = time.perf_counter() - started
                if any(codes):
                    raise SystemExit(f"{n} shard(s): exit codes {codes}")
                if n == 1:
                    single = data_files(outs[0])
                    same = True
                else:
                    merged = root / f"run-{n}" / "merged"
                    subprocess.run(
                        [sys.executable, "-m", "hfevol.cli", "merge", *map(str, outs), "--out", str(merged)], env=env, check=True, stdout=subprocess.DEVNULL
                    )
                    same = single is not None and data_files(merged) == single
                rate = args.rows / seconds
                results.append(
                    {
                        "shards": n,
                        "seconds": round(seconds, 2),
                        "requests_per_s": round(rate, 1),
                        "of_capacity": round(rate / capacity, 3),
                        "merged_equal": same,
                    }
                )
                print(json.dumps(results[-1]), flush=True)
    finally:
        proc.kill()
    print(f"\ncapacity {capacity:.0f} requests/s ({args.slots} slots × {args.latency} s), {args.rows} rows, {os.cpu_count()} CPU(s)")
    print("| shards | wall s | requests/s | of capacity | merged = single run |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['shards']} | {r['seconds']} | {r['requests_per_s']} | {r['of_capacity']:.0%} | {'yes' if r['merged_equal'] else 'NO'} |")


if __name__ == "__main__":
    main()
