"""What recording top-1 probabilities costs local generation: rows/s with and without ``--record-top1``.

The embedded SmolLM2-135M-Instruct (or ``--model``) answers Evol-Instruct prompts built from the
built-in sample, in batches of ``--batch-size``, once without the recorder and once with it
(:class:`hfevol.backends._sampling.Top1Recorder`, one softmax over the vocabulary per step).
Recording changes no token, so both modes generate exactly the same text (checked): the
difference is the recorder's cost. The model loads and warms up before any clock starts, and
the blocks of rows alternate (A B B A ...), so both modes see the same load on a shared machine.

    python benchmarks/top1_overhead.py                      # 32 rows, 64 new tokens, sampled, batch 8
    python benchmarks/top1_overhead.py --rows 64 --greedy --device cuda
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def prompts(n: int) -> list[str]:
    """``n`` evolution prompts: the built-in sample's instructions through the operation rotation."""
    from hfevol.evolution import EvolInstruct
    from hfevol.io import builtin_sample

    sample = builtin_sample().to_list()
    evolver = EvolInstruct(backend=_NoBackend())
    batch = {"instruction": [sample[i % len(sample)]["instruction"] for i in range(n)]}
    return [r.messages[-1][1] for r in evolver.prepare(batch, list(range(n))).requests]


def _NoBackend():  # noqa: N802  a placeholder: prepare() builds prompts and sends nothing
    from hfevol.backends import Backend

    class NoBackend(Backend):
        def describe(self):
            return {"backend": "none"}

        def generate(self, requests):
            raise AssertionError("not used")

    return NoBackend()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded")
    p.add_argument("--rows", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--greedy", action="store_true", help="greedy decoding (default: T 0.7, top_p 0.95, per-row seeds)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()

    import torch

    from hfevol.backends import GenerationRequest, SamplingParams
    from hfevol.backends.local import TransformersBackend

    if args.threads:
        torch.set_num_threads(args.threads)
    params = SamplingParams(temperature=0.0 if args.greedy else 0.7, top_p=1.0 if args.greedy else 0.95, max_new_tokens=args.max_new_tokens)
    backend = TransformersBackend(model=args.model, batch_size=args.batch_size, dtype=args.dtype, device=args.device)
    texts = prompts(args.rows)
    backend.generate([GenerationRequest.chat(texts[0], params=params, seed=0, top1=True)])  # load and warm up

    def block(start: int, stop: int, top1: bool) -> tuple[float, list]:
        requests = [GenerationRequest.chat(texts[i], params=params, seed=i, top1=top1) for i in range(start, stop)]
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        results = backend.generate(requests)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0, results

    seconds = {False: 0.0, True: 0.0}
    results: dict[bool, list] = {False: [None] * args.rows, True: [None] * args.rows}
    step = args.batch_size
    for n, start in enumerate(range(0, args.rows, step)):
        stop = min(start + step, args.rows)
        order = (False, True) if n % 2 == 0 else (True, False)
        for top1 in order:
            took, out = block(start, stop, top1)
            seconds[top1] += took
            results[top1][start:stop] = out
    same = [a.text for a in results[False]] == [b.text for b in results[True]]
    tokens = sum(r.completion_tokens or 0 for r in results[False])
    print(f"model {args.model}, {args.device} {args.dtype}, {args.rows} rows, batch {args.batch_size}, "
          f"{args.max_new_tokens} new tokens max ({tokens} generated), {'greedy' if args.greedy else 'sampled'}; "
          f"{platform.machine()} {platform.system()}, torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    print(f"{'mode':<16}{'seconds':>10}{'rows/s':>10}{'tokens/s':>10}")
    for top1, name in ((False, "plain"), (True, "--record-top1")):
        print(f"{name:<16}{seconds[top1]:>10.2f}{args.rows / seconds[top1]:>10.2f}{tokens / seconds[top1]:>10.1f}")
    print(f"overhead of recording: {100 * (seconds[True] / seconds[False] - 1):+.1f}% time; same texts: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
