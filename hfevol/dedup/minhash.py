"""MinHash signatures (``rensa``'s R-MinHash) and LSH banding over them.

A row's signature is ``num_perm`` 32-bit values over its set of word n-grams
(:func:`hfevol.dedup.text.ngrams`); the share of equal values estimates the Jaccard
similarity of two rows' sets. LSH cuts each signature into ``bands`` bands of ``rows``
values; two rows whose values agree on a whole band are candidates, and a candidate is a
near-duplicate only when its estimated Jaccard is at least the threshold. ``(bands, rows)``
is chosen for the threshold by :func:`lsh_params` (the same criterion as datasketch's
``MinHashLSH``: the least false-positive plus false-negative area).

Within a band, rows are grouped by the band's values and each row is checked against the
first row of its group and the row before it in the group (in the caller's order), so the
work is linear in rows × bands; a group of rows that all agree still links into one chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import MissingDependencyError

DEFAULT_NUM_PERM = 128
DEFAULT_NGRAM = 3
SEED = 1
INSTALL_HINT = "pip install 'hfevol[dedup]'  (rensa, the Rust MinHash)"


def _rensa() -> Any:
    try:
        import rensa
    except ImportError:
        raise MissingDependencyError("rensa", "MinHash near-duplicate detection", INSTALL_HINT) from None
    return rensa


def signatures(gram_sets: Sequence[Sequence[str]], num_perm: int = DEFAULT_NUM_PERM, seed: int = SEED) -> Any:
    """One signature per set of grams: a uint32 array (sets × ``num_perm``). An empty set gives a row of zeros
    (callers leave such rows out: they have no grams to compare)."""
    import numpy as np

    rensa = _rensa()
    out = np.zeros((len(gram_sets), num_perm), dtype=np.uint32)
    full = [i for i, g in enumerate(gram_sets) if g]
    if full:
        digests = rensa.RMinHash.digests_from_token_sets([list(gram_sets[i]) for i in full], num_perm, seed)
        out[full] = np.asarray(digests, dtype=np.uint32)
    return out


def _probability(s: Any, bands: int, rows: int) -> Any:
    return 1.0 - (1.0 - s**rows) ** bands


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """``(bands, rows)`` with ``bands * rows <= num_perm`` that minimise the area of false positives
    (below ``threshold``) plus false negatives (above it) under the LSH S-curve."""
    import numpy as np

    below = np.linspace(0.0, threshold, 201)
    above = np.linspace(threshold, 1.0, 201)
    best: tuple[float, int, int] | None = None
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = np.trapezoid(_probability(below, bands, rows), below)
            fn = np.trapezoid(1.0 - _probability(above, bands, rows), above)
            if best is None or fp + fn < best[0]:
                best = (fp + fn, bands, rows)
    assert best is not None
    return best[1], best[2]


def estimated_jaccard(sigs: Any, a: Any, b: Any) -> Any:
    """Estimated Jaccard of the row pairs ``(a[k], b[k])``: the share of equal signature values."""
    import numpy as np

    return (sigs[a] == sigs[b]).mean(axis=1) if len(a) else np.zeros(0)


def candidate_edges(sigs: Any, threshold: float, bands: int, rows: int) -> tuple[Any, Any, Any]:
    """Pairs ``(i, j)`` with ``i`` before ``j`` in the rows' order that share a band and whose estimated
    Jaccard is at least ``threshold``, with that estimate; each pair at most once.

    Rows are compared in their order (row 0 first); pass the signatures already sorted by the
    order that decides representatives.
    """
    import numpy as np

    n = sigs.shape[0]
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    firsts, seconds = [], []
    order = np.arange(n)
    for band in range(bands):
        part = np.ascontiguousarray(sigs[:, band * rows : (band + 1) * rows])
        keys = part.view(np.dtype((np.void, part.dtype.itemsize * rows))).ravel()
        # stable sort by band key: within a group, rows stay in the caller's order
        by_key = np.argsort(keys, kind="stable")
        sorted_keys = keys[by_key]
        same = np.concatenate([[False], sorted_keys[1:] == sorted_keys[:-1]])
        if not same.any():
            continue
        start = np.maximum.accumulate(np.where(~same, order, 0))  # position of each group's first row
        pos = np.nonzero(same)[0]
        firsts += [by_key[start[pos]], by_key[pos - 1]]
        seconds += [by_key[pos], by_key[pos]]
    if not firsts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    pairs = np.unique(np.stack([np.concatenate(firsts), np.concatenate(seconds)], axis=1), axis=0)
    est = estimated_jaccard(sigs, pairs[:, 0], pairs[:, 1])
    keep = est >= threshold
    return pairs[keep, 0].astype(np.int64), pairs[keep, 1].astype(np.int64), est[keep]
