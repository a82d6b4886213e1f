"""A histogram of a score column, written as a PNG next to the data it describes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from ..errors import MissingDependencyError


def histogram_png(values: Sequence[float], path: str | Path, *, label: str, title: str, bins: int = 30) -> Path | None:
    """Draw the finite ``values`` as a histogram with their mean marked; None if there are none.

    Raises:
        MissingDependencyError: matplotlib is not installed.
    """
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "the score histogram") from exc
    mean = sum(finite) / len(finite)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        ax.hist(finite, bins=min(bins, max(len(set(finite)), 1)), color="#c0392b", alpha=0.85)
        ax.axvline(mean, color="black", linestyle="--", linewidth=1, label=f"mean {mean:.4f}")
        ax.set_xlabel(label)
        ax.set_ylabel("rows")
        skipped = len(values) - len(finite)
        ax.set_title(title + (f" ({skipped} undefined rows not shown)" if skipped else ""), fontsize=10)
        ax.legend()
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out)
    finally:
        plt.close(fig)
    return out
