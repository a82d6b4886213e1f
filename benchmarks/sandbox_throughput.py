"""Verifier sandbox throughput: sandboxed calls per second, zygote vs a fresh process per call.

One "call" runs one verifier function (fewer than 50 words?) on its inputs.

- ``zygote``: :class:`hfevol.sandbox.Sandbox`, a fresh child forked from a warm zygote per
  function (one worker, then ``run_many`` over the whole pool).
- ``fresh process``: a new sandboxed interpreter per function at the same level
  (``runner.py --once`` in bubblewrap + seccomp, the reference design's alternative).
- ``in-process exec``: the reference code's ``exec`` in the calling interpreter. **Unsafe**;
  shown only as the floor.

    python benchmarks/sandbox_throughput.py                  # 300 zygote calls, 60 fresh
    python benchmarks/sandbox_throughput.py --calls 1000 --fresh-calls 100 --inputs 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hfevol.sandbox import Sandbox, probe  # noqa: E402

SOURCE = "def evaluate(response):\n    return len(response.split()) < 50\n"


def inputs_for(n: int) -> list[str]:
    return [" ".join(["word"] * (10 * k + 5)) for k in range(n)]


def expected(inputs: list[str]) -> list[bool]:
    return [len(text.split()) < 50 for text in inputs]


def bench_zygote(calls: int, inputs: list[str], workers: int) -> float:
    sandbox = Sandbox(per_input_timeout=1.0, workers=workers)
    for _ in range(3 * workers):  # start and warm every zygote
        sandbox.run(SOURCE, inputs)
    started = time.perf_counter()
    if workers == 1:
        runs = [sandbox.run(SOURCE, inputs) for _ in range(calls)]
    else:
        runs = sandbox.run_many([(SOURCE, inputs)] * calls)
    seconds = time.perf_counter() - started
    assert all(run.results == expected(inputs) for run in runs), "a sandboxed verdict is wrong"
    sandbox.close()
    return seconds


def bench_fresh(calls: int, inputs: list[str], level: str) -> float:
    command = probe.runner_command(level, "--once")
    request = json.dumps({"id": 1, "source": SOURCE, "inputs": inputs, "per_input_timeout": 1.0, "deadline": 10}) + "\n"
    started = time.perf_counter()
    for _ in range(calls):
        done = subprocess.run(command, input=request.encode(), capture_output=True, env=dict(probe.CLEAN_ENV),
                              cwd="/", timeout=60, check=True)  # fmt: skip
        reply = json.loads(done.stdout.decode().strip().splitlines()[-1])
        assert reply["results"] == expected(inputs), "a fresh-process verdict is wrong"
    return time.perf_counter() - started


def bench_in_process(calls: int, inputs: list[str]) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        namespace: dict = {}
        exec(compile(SOURCE, "<verifier>", "exec"), namespace)  # the unsafe reference, for scale only
        assert [namespace["evaluate"](text) for text in inputs] == expected(inputs)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300, help="zygote and in-process calls")
    parser.add_argument("--fresh-calls", type=int, default=60, help="fresh-process calls (slow)")
    parser.add_argument("--inputs", type=int, default=3, help="inputs per function")
    args = parser.parse_args()
    inputs = inputs_for(args.inputs)
    level = Sandbox().level
    workers = min(2, os.cpu_count() or 1)
    rows = [
        (f"zygote, 1 worker ({level})", args.calls, bench_zygote(args.calls, inputs, 1)),
        (f"zygote, run_many over {workers} workers ({level})", args.calls, bench_zygote(args.calls, inputs, workers)),
        (f"fresh process per call ({level})", args.fresh_calls, bench_fresh(args.fresh_calls, inputs, level)),
        ("in-process exec (unsafe reference)", args.calls, bench_in_process(args.calls, inputs)),
    ]
    fresh_rate = rows[2][1] / rows[2][2]
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}; {args.inputs} inputs per function")  # fmt: skip
    print()
    print("| setup | calls | calls/s | ms/call | vs fresh process |")
    print("|---|---:|---:|---:|---:|")
    for name, calls, seconds in rows:
        rate = calls / seconds
        print(f"| {name} | {calls} | {rate:,.0f} | {1000 / rate:.2f} | {rate / fresh_rate:.1f}x |")


if __name__ == "__main__":
    main()
