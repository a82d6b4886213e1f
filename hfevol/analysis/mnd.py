"""Minimum neighbour distance (MND): how far each row's embedding lies from its nearest other row.

The measure of the paper's diversity analysis (Hui et al., arXiv 2412.11231, Figure 4), as
its reference code computes it: a faiss flat L2 index over unit-length sentence embeddings,
queried for the nearest row other than the row itself. faiss reports the **squared** L2
distance, so for unit vectors

    MND_i = min_{j ≠ i} ‖e_i − e_j‖² = 2 − 2 · max_{j ≠ i} cos(e_i, e_j),   in [0, 4].

``form="cosine"`` gives ``1 − max cos`` instead (in [0, 2]). Rows closer than
:data:`NEAR_DUPLICATE` (0.05, squared L2, the reference's threshold) to a row count as
near-duplicates of it; an exact duplicate has MND 0 whichever form is used.

The search is exact and block-wise: ``block`` query rows at a time against every row, so
memory is O(rows × block) and a 100k-row dataset never needs a rows × rows matrix. Ties
go to the lowest row index. The vectors are normalised here (a zero vector is refused),
so a model without a Normalize module gives the same values as one with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError, DataError

Form = Literal["squared_l2", "cosine"]
FORMS: tuple[str, ...] = ("squared_l2", "cosine")
NEAR_DUPLICATE = 0.05
"""Squared-L2 distance under which another row counts as a near-duplicate (the reference code's ``repeat_count``)."""
DEFAULT_BLOCK = 1024


@dataclass(frozen=True)
class MNDResult:
    """Per row: the distance to the nearest other row, which row that is, and how many rows are near-duplicates."""

    distance: Any
    """float64 array, one value per row, in :attr:`form`."""
    neighbour: Any
    """int64 array: index of the nearest other row (the lowest index among ties)."""
    near_duplicates: Any
    """int64 array: other rows within :data:`NEAR_DUPLICATE` squared L2 of this one."""
    form: str

    def metadata(self) -> dict[str, Any]:
        return {
            "form": self.form,
            "definition": "min over other rows of ||e_i - e_j||^2 = 2 - 2 cos (unit vectors)"
            if self.form == "squared_l2"
            else "min over other rows of 1 - cos",
            "near_duplicate_threshold": NEAR_DUPLICATE,
            "near_duplicate_form": "squared_l2",
            "rows": int(len(self.distance)),
            "rows_with_near_duplicates": int((self.near_duplicates > 0).sum()),
        }


def unit_rows(embeddings: Any) -> Any:
    """``embeddings`` as a float32 C-contiguous 2-D array of unit rows.

    Raises:
        DataError: not a 2-D finite array, or a row of zeros (it has no direction).
    """
    import numpy as np

    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2:
        raise DataError(f"embeddings must be a 2-D array (rows × dimensions), got shape {e.shape}")
    if not np.isfinite(e).all():
        bad = int(np.argwhere(~np.isfinite(e))[0][0])
        raise DataError(f"embedding of row {bad} holds a NaN or infinite value")
    norms = np.linalg.norm(e, axis=1)
    if (norms == 0).any():
        raise DataError(
            f"embedding of row {int(np.argmax(norms == 0))} is all zeros, so it has no direction",
            hint="check that row's text; an empty text can embed to zeros.",
        )
    return np.ascontiguousarray(e / norms[:, None], dtype=np.float32)


def min_neighbour_distance(embeddings: Any, *, form: Form = "squared_l2", block: int = DEFAULT_BLOCK) -> MNDResult:
    """The MND of every row of ``embeddings`` (rows × dimensions), computed in blocks of ``block`` rows.

    Raises:
        DataError: fewer than 2 rows (a row has no neighbour), or bad embeddings (:func:`unit_rows`).
        ConfigError: an unknown ``form`` or a ``block`` below 1.
    """
    import numpy as np

    if form not in FORMS:
        raise ConfigError(f"MND form {form!r} is not one of {', '.join(FORMS)}")
    if not isinstance(block, int) or isinstance(block, bool) or block < 1:
        raise ConfigError(f"block={block!r} must be an integer >= 1")
    e = unit_rows(embeddings)
    n = e.shape[0]
    if n < 2:
        raise DataError(
            f"MND needs at least 2 rows (each row's nearest other row), got {n}", hint="analyse a dataset (or round) with 2 or more rows that have text."
        )
    best = np.empty(n, dtype=np.float64)
    neighbour = np.empty(n, dtype=np.int64)
    near = np.empty(n, dtype=np.int64)
    # cos > 1 - t/2  <=>  2 - 2 cos < t: the threshold on the similarity scale
    near_cos = 1.0 - NEAR_DUPLICATE / 2.0
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        sims = e[lo:hi] @ e.T  # (hi - lo) × n, the only large allocation
        sims[np.arange(hi - lo), np.arange(lo, hi)] = -np.inf  # never the row itself
        j = np.argmax(sims, axis=1)  # first maximum: ties go to the lowest index
        top = np.minimum(sims[np.arange(hi - lo), j].astype(np.float64), 1.0)
        neighbour[lo:hi] = j
        best[lo:hi] = 2.0 - 2.0 * top if form == "squared_l2" else 1.0 - top
        near[lo:hi] = (sims > near_cos).sum(axis=1)
        del sims
    np.maximum(best, 0.0, out=best)  # rounding can make 2 - 2·cos slightly negative for duplicates
    return MNDResult(distance=best, neighbour=neighbour, near_duplicates=near, form=form)
