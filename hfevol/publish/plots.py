"""Score distribution plots for the dataset card (PNG, drawn without a display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import MissingDependencyError


def score_histogram(values: Sequence[float], column: str, out: Path) -> Path:
    """A histogram of ``values`` with its mean marked, saved as ``out`` (PNG).

    Raises:
        MissingDependencyError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "plotting score distributions") from exc

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    try:
        ax.hist(values, bins=min(30, max(5, len(values) // 2)), color="#4c72b0", edgecolor="white")
        mean = sum(values) / len(values)
        ax.axvline(mean, color="#dd8452", linestyle="--", label=f"mean {mean:.4g}")
        ax.set_xlabel(column)
        ax.set_ylabel("rows")
        ax.set_title(f"Distribution of {column} ({len(values)} rows)")
        ax.legend()
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        # No software/version stamp: identical data gives identical bytes on any matplotlib.
        fig.savefig(out, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return out
