"""MND time per 10k rows: hfevol's exact block-wise search against references.

Synthetic unit vectors (384 dimensions, as all-MiniLM-L6-v2's) at 10k and 100k rows:

- ``hfevol``: :func:`hfevol.analysis.mnd.min_neighbour_distance` (numpy, memory rows × block);
- ``numpy full``: one rows × rows similarity matrix (only where it fits: 10k rows = 400 MB);
- ``faiss``: ``IndexFlatL2`` searched for 2 neighbours (the paper's reference uses a flat L2
  index through ``datasets``), when ``faiss`` is importable (``pip install faiss-cpu``).

The references run up to ``--reference-limit`` rows (default 20k).

Every method's values are checked against hfevol's (max absolute difference printed).

    python benchmarks/mnd_throughput.py [--rows 10000 100000] [--dim 384] [--block 1024]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    e = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def full_matrix(e: np.ndarray) -> np.ndarray:
    sims = e @ e.T
    np.fill_diagonal(sims, -np.inf)
    return np.maximum(2.0 - 2.0 * sims.max(axis=1).astype(np.float64), 0.0)


def with_faiss(e: np.ndarray) -> np.ndarray | None:
    try:
        import faiss
    except ImportError:
        return None
    index = faiss.IndexFlatL2(e.shape[1])
    index.add(e)
    distances, ids = index.search(e, 2)
    self_first = ids[:, 0] == np.arange(len(e))
    return np.where(self_first, distances[:, 1], distances[:, 0]).astype(np.float64)


def timed(fn, *args):  # noqa: ANN001, ANN201
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main() -> None:
    from hfevol.analysis.mnd import min_neighbour_distance

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--block", type=int, default=1024)
    parser.add_argument("--reference-limit", type=int, default=20_000, help="largest size for the references (full matrix: rows² floats)")
    args = parser.parse_args()
    try:
        import threadpoolctl

        threads = threadpoolctl.threadpool_info()[0].get("num_threads") if threadpoolctl.threadpool_info() else "?"
    except ImportError:
        threads = "?"
    print(f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs visible, BLAS threads {threads}, numpy {np.__version__}")
    print(f"vectors: {args.dim} dimensions, float32, block {args.block}\n")
    print("| rows | method | seconds | s per 10k rows | vs hfevol | max abs diff |")
    print("|---|---|---|---|---|---|")
    for n in args.rows:
        e = vectors(n, args.dim)
        ours, t_ours = timed(lambda x: min_neighbour_distance(x, block=args.block).distance, e)
        rows = [("hfevol block-wise", t_ours, 0.0)]
        if n <= args.reference_limit:
            full, t_full = timed(full_matrix, e)
            rows.append(("numpy full matrix", t_full, float(np.abs(full - ours).max())))
        ref, t_faiss = timed(with_faiss, e) if n <= args.reference_limit else (None, 0.0)
        if ref is not None:
            rows.append(("faiss IndexFlatL2", t_faiss, float(np.abs(ref - ours).max())))
        for name, seconds, diff in rows:
            print(f"| {n} | {name} | {seconds:.2f} | {seconds * 10_000 / n:.3f} | {seconds / t_ours:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
