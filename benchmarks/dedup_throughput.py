"""Rows per second of ``hfevol dedup`` (exact + MinHash/LSH) and ``decontaminate`` (8-gram index) on synthetic prompts,
with the MinHash libraries compared on the same rows.

    python benchmarks/dedup_throughput.py [--sizes 10000 100000]

Rows: prompts of 12-60 words drawn from a 5,000-word vocabulary; a fifth are near-copies
(two words changed) of an earlier row, and a twentieth exact copies with other case. Printed:
rows/s of the whole dedup stage (hfevol, rensa signatures), of the signatures alone with
rensa and with datasketch (``MinHash.bulk``), of a datasketch ``MinHashLSH`` dedup (insert +
query per row, the usual script) as a reference, and their ratios; and rows/s of
decontamination against 1,000 synthetic benchmark prompts.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


def synthetic(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(5000)]
    rows: list[str] = []
    for _ in range(n):
        r = rng.random()
        if rows and r < 0.2:
            words = rows[rng.randrange(len(rows))].lower().split()
            for _ in range(2):
                words[rng.randrange(len(words))] = rng.choice(vocab)
            rows.append(" ".join(words))
        elif rows and r < 0.25:
            rows.append(rows[rng.randrange(len(rows))].upper())
        else:
            rows.append(" ".join(rng.choices(vocab, k=rng.randint(12, 60))))
    return rows


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    import datasets
    import datasketch

    from hfevol.dedup.decontaminate import decontaminate
    from hfevol.dedup.dedup import dedup
    from hfevol.dedup.minhash import signatures
    from hfevol.dedup.text import ngrams, words

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    datasets.disable_caching()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(
        f"{'rows':>8} {'hfevol dedup':>14} {'rensa sigs':>12} {'datasketch sigs':>16} {'datasketch LSH':>15} {'dedup/ds-LSH':>13} {'sigs ratio':>11} {'decontaminate':>14}"
    )
    bench_path = "/tmp/hfevol_bench_prompts.jsonl"
    with open(bench_path, "w") as f:
        import json

        for text in synthetic(1000, seed=99):
            f.write(json.dumps({"prompt": text}) + "\n")
    for n in args.sizes:
        rows = synthetic(n)
        ds = datasets.Dataset.from_dict({"instruction": rows})
        grams = [sorted(set(ngrams(words(t), 3))) for t in rows]
        t_dedup = timed(lambda: dedup(ds))
        t_rensa = timed(lambda: signatures(grams, 128))
        encoded = [[g.encode() for g in s] for s in grams]
        t_ds = timed(lambda: datasketch.MinHash.bulk(encoded, num_perm=128, seed=1))

        def datasketch_lsh() -> None:
            lsh = datasketch.MinHashLSH(threshold=0.8, num_perm=128)
            for i, m in enumerate(datasketch.MinHash.bulk(encoded, num_perm=128, seed=1)):
                if not lsh.query(m):
                    lsh.insert(str(i), m)

        t_lsh = timed(datasketch_lsh)
        t_decont = timed(lambda: decontaminate(ds, [bench_path]))
        print(
            f"{n:>8} {n / t_dedup:>14,.0f} {n / t_rensa:>12,.0f} {n / t_ds:>16,.0f} {n / t_lsh:>15,.0f} {t_lsh / t_dedup:>12.1f}x {t_ds / t_rensa:>10.1f}x {n / t_decont:>14,.0f}"
        )


if __name__ == "__main__":
    main()
