"""IFD / IC-IFD scoring throughput: hfevol's batched two-pass core vs the reference procedure.

Both score the same rows with the same model (the embedded SmolLM2-135M-Instruct, float32,
CPU) and must give the same numbers.

- ``reference``: the paper's procedure transcribed plainly (``tests/reference_eval_loss.py``):
  one row at a time, three forward passes, ``model(input_ids, labels=...).loss``.
- ``hfevol``: :class:`hfevol.scoring.Score`, two passes per row, length-bucketed batches.

Each method runs in its own subprocess, so its peak memory (``ru_maxrss``) is its own; the
model loads and warms up before any clock starts. The rows are cut into blocks that the
two workers score in turn (A B B A ...), so both see the same load on a shared machine.
Tokens/s counts the same work for both: per row, the tokens of ``question + "\n" + answer``
plus those of the answer alone.

    python benchmarks/scoring_throughput.py               # 200 rows, batch 16
    python benchmarks/scoring_throughput.py --rows 60 --batch-size 32 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KEYS = ("loss_q", "loss_a_given_q", "loss_a", "ifd", "ic_ifd")


def benchmark_rows(n: int) -> list[dict[str, str]]:
    """``n`` rows from the built-in sample (60 rows with answers), varied as they repeat."""
    from hfevol.io import builtin_sample

    sample = builtin_sample().to_list()
    rows = []
    for i in range(n):
        base = sample[i % len(sample)]
        variant = (i // len(sample)) % 4
        instruction, input_text, output = base["instruction"], base["input"], base["output"]
        if variant == 1:
            instruction += " Keep the answer short and clear."
        elif variant == 2:
            output = output + "\n\nIn short: " + output.split(". ")[0].rstrip(".") + "."
        elif variant == 3:
            input_text = (input_text + "\n" if input_text else "") + f"(topic: {base['category']})"
        rows.append({"instruction": instruction, "input": input_text, "output": output})
    return rows


def worker(method: str, n: int, batch_size: int, threads: int | None) -> None:
    """Score the blocks of rows the parent asks for (``start stop`` lines on stdin), one JSON line each."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    from hfevol.models import load_model
    from hfevol.scoring import Score

    sys.path.insert(0, str(REPO / "tests"))
    from reference_eval_loss import reference_scores

    loaded = load_model("embedded", device="cpu")
    rows = benchmark_rows(n)
    score = Score(model="embedded", device="cpu", batch_size=batch_size)

    def run(batch: list[dict[str, str]]) -> list[dict[str, float]]:
        if method == "reference":
            return reference_scores(loaded.model, loaded.tokenizer, batch)
        cols = score.score_texts([r["instruction"] for r in batch], [r["output"] for r in batch], [r["input"] for r in batch])
        return [{k: cols[k][i] for k in KEYS} for i in range(len(batch))]

    run(rows[:4])  # warm-up: first-call allocations, the head probe
    print(json.dumps({"ready": True, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        start, stop = map(int, line.split())
        began = time.perf_counter()
        values = run(rows[start:stop])
        print(json.dumps({"seconds": time.perf_counter() - began, "values": values}), flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    print(json.dumps({"peak_mb": peak_mb}), flush=True)


def compare(args: argparse.Namespace) -> dict[str, dict]:
    """Start both workers, hand them the blocks in A B B A order, collect times, values and memory."""
    methods = ("reference", "hfevol")
    procs = {}
    for m in methods:
        cmd = [sys.executable, __file__, "--worker", m, "--rows", str(args.rows), "--batch-size", str(args.batch_size)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        procs[m] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    results = {m: {"seconds": 0.0, "values": []} for m in methods}
    for m in methods:
        results[m].update(json.loads(procs[m].stdout.readline()))
    blocks = [(lo, min(lo + args.block, args.rows)) for lo in range(0, args.rows, args.block)]
    for k, (lo, hi) in enumerate(blocks):
        for m in methods if k % 2 == 0 else methods[::-1]:
            procs[m].stdin.write(f"{lo} {hi}\n")
            procs[m].stdin.flush()
            reply = json.loads(procs[m].stdout.readline())
            results[m]["seconds"] += reply["seconds"]
            results[m]["values"].extend(reply["values"])
    for m in methods:
        procs[m].stdin.write("\n")
        procs[m].stdin.flush()
        results[m].update(json.loads(procs[m].stdout.readline()))
        procs[m].wait()
    from hfevol.models import load_model

    tok = load_model("embedded", device="cpu").tokenizer
    tokens = 0
    for r in benchmark_rows(args.rows):
        question = r["instruction"] + ("\n" + r["input"] if r["input"] else "")
        tokens += len(tok(question + "\n" + r["output"]).input_ids) + len(tok(r["output"]).input_ids)
    for m in methods:
        results[m]["tokens"] = tokens
    return results


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, Python {platform.python_version()}, no GPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--block", type=int, default=50, help="rows per block; the workers alternate blocks (default: 50)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in each worker (default: torch's choice)")
    parser.add_argument("--worker", choices=["reference", "hfevol"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.rows, args.batch_size, args.threads)
        return

    load_before = os.getloadavg()[0]
    results = compare(args)
    load_after = os.getloadavg()[0]
    ref, ours = results["reference"], results["hfevol"]
    worst_rel, worst_abs = 0.0, 0.0
    for a, b in zip(ref["values"], ours["values"], strict=True):
        for k in KEYS:
            worst_abs = max(worst_abs, abs(a[k] - b[k]))
            worst_rel = max(worst_rel, abs(a[k] - b[k]) / abs(a[k]))
    speedup = ref["seconds"] / ours["seconds"]

    print(f"\nIFD / IC-IFD scoring, {args.rows} rows, embedded SmolLM2-135M-Instruct (float32, CPU)")
    print(f"machine: {machine()}; torch threads {ours['threads']}; load average {load_before:.1f} -> {load_after:.1f}")
    print(f"blocks of {args.block} rows, alternating between the two workers\n")
    print("| method | passes/row | batch | seconds | rows/s | tokens/s | peak RSS (MB) | speed-up |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r, passes, batch, rel in (("reference procedure", ref, 3, 1, 1.0), ("hfevol", ours, 2, args.batch_size, speedup)):
        print(
            f"| {name} | {passes} | {batch} | {r['seconds']:.1f} | {args.rows / r['seconds']:.2f} | "
            f"{r['tokens'] / r['seconds']:.0f} | {r['peak_mb']:.0f} | {rel:.2f}× |"
        )
    print(f"\nlargest per-row difference over L(Q), L(A|Q), L(A), IFD, IC-IFD: {worst_rel:.1e} relative ({worst_abs:.1e} absolute)")
    print(f"tokens/s counts {ref['tokens']} tokens of work for both (conditioned text + answer alone, per row)")


if __name__ == "__main__":
    main()
