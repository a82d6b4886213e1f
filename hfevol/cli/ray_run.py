"""``hfevol run``: run a stage command (evolve, respond, score) as N shards, on Ray or as local processes, then merge.

    hfevol run --ray [ADDRESS] --num-shards 8 evolve --dataset seeds.jsonl --out out/evolved --endpoint URL ...

Shard ``I`` runs the stage with ``--num-shards N --shard-index I --out <shards-dir>/shard-I``
(one Ray task per shard, or one local process per shard without ``--ray``). Shards whose
folder already holds a completion marker are not run again, so the same command after a
failure runs only the missing shards (each resuming from its own request cache). When every
shard is complete, they are merged into the stage's ``--out`` (``hfevol merge``).
``--max-in-flight`` stays the limit per endpoint for the whole job: each shard gets its part.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError, HfevolError

STAGES = ("evolve", "respond", "score")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a stage as N shards (on Ray, or local processes) and merge them", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the shards as Ray tasks; ADDRESS of a cluster (default: a running Ray in this process, or a new local one)")  # fmt: skip
    p.add_argument("--num-shards", type=int, required=True, metavar="N", help="shards of the job")
    p.add_argument("--shards-dir", default=None, help="where the shard folders go (default: <out>.shards beside the stage's --out)")
    p.add_argument("--task-cpus", type=float, default=1.0, help="CPUs Ray reserves for each shard (default: 1)")
    p.add_argument("--task-resources", default=None, metavar="JSON", help="other Ray resources per shard, e.g. '{\"client\": 1}'")
    p.add_argument("stage", nargs=argparse.REMAINDER, help="the stage command and its options: evolve|respond|score ... --out DIR")
    p.set_defaults(run=run)


def _split(args: argparse.Namespace) -> tuple[list[str], Path]:
    stage = list(args.stage)
    if args.ray in STAGES:  # `--ray evolve ...`: the optional address took the stage's name
        stage.insert(0, args.ray)
        args.ray = "local"
    if not stage or stage[0] not in STAGES:
        raise ConfigError(
            "hfevol run needs a stage command after its options", hint="for example: hfevol run --num-shards 4 evolve --dataset seeds.jsonl --out out"
        )
    for flag in ("--num-shards", "--shard-index"):
        if flag in stage:
            raise ConfigError(f"give {flag} to hfevol run, not to the stage command", hint="hfevol run --num-shards N sets both for each shard.")
    if "--out" not in stage or stage.index("--out") + 1 >= len(stage):
        raise ConfigError("the stage command needs --out DIR (where the merged output goes)")
    return stage, Path(stage[stage.index("--out") + 1])


def shard_argv(stage: list[str], out: Path, shards_dir: Path, n: int, i: int) -> list[str]:
    """The stage command of shard ``i``: its own ``--out`` and the shard options."""
    argv = list(stage)
    argv[argv.index("--out") + 1] = str(shards_dir / f"shard-{i:05d}")
    return [*argv, "--num-shards", str(n), "--shard-index", str(i)]


def _run_shard(argv: list[str]) -> tuple[int, str]:
    """Run one shard's command in a fresh interpreter; its exit status and the tail of its error output."""
    proc = subprocess.run([sys.executable, "-m", "hfevol.cli", *argv], capture_output=True, text=True)
    return proc.returncode, proc.stderr[-2000:]


def run(args: argparse.Namespace) -> int:
    from ..merge import merge_shards
    from ..shards import ShardSpec, is_complete

    stage, out = _split(args)
    ShardSpec(args.num_shards, 0)  # checks N
    shards_dir = Path(args.shards_dir) if args.shards_dir else out.with_name(out.name + ".shards")
    folders = [shards_dir / f"shard-{i:05d}" for i in range(args.num_shards)]
    todo = [i for i, f in enumerate(folders) if not is_complete(f)]
    print(
        f"{args.num_shards} shard(s), {args.num_shards - len(todo)} complete already; running {len(todo)}"
        + (f" on Ray ({args.ray})" if args.ray else " as local processes")
    )
    argvs = {i: shard_argv(stage, out, shards_dir, args.num_shards, i) for i in todo}
    results = _on_ray(args, argvs) if args.ray else _locally(argvs)
    failed = {i: r for i, r in results.items() if r[0] != 0 or not is_complete(folders[i])}
    for i, (code, err) in sorted(failed.items()):
        last = (err.strip().splitlines() or ["no error output"])[-1]
        print(f"   shard {i} failed (exit {code}): {last}", file=sys.stderr)
    if failed:
        raise HfevolError(f"{len(failed)} of {args.num_shards} shard(s) did not finish: {', '.join(str(i) for i in sorted(failed))}",
                          hint="run the same command again: only those shards run, each from its request cache.")  # fmt: skip
    merged = merge_shards(folders, out)
    print(f"merged {args.num_shards} shard(s) into {merged}")
    return 0


def _locally(argvs: dict[int, list[str]]) -> dict[int, tuple[int, str]]:
    procs = {i: subprocess.Popen([sys.executable, "-m", "hfevol.cli", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for i, argv in argvs.items()}  # fmt: skip
    return {i: (p.wait(), p.stderr.read() if p.stderr else "") for i, p in procs.items()}


def _on_ray(args: argparse.Namespace, argvs: dict[int, list[str]]) -> dict[int, tuple[int, str]]:
    from ..extras import require

    require("ray", "hfevol run --ray")
    import ray

    if not ray.is_initialized():
        ray.init(address=None if args.ray == "local" else args.ray)
    options: dict[str, Any] = {"num_cpus": args.task_cpus}
    if args.task_resources:
        try:
            options["resources"] = json.loads(args.task_resources)
        except ValueError as exc:
            raise ConfigError(f"--task-resources {args.task_resources!r} is not JSON: {exc}") from None
    task = ray.remote(max_retries=0)(_run_shard).options(**options)
    refs = {i: task.remote(argv) for i, argv in argvs.items()}
    return {i: tuple(ray.get(ref)) for i, ref in refs.items()}
