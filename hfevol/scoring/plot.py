"""The one histogram of a score column (PNG), for ``hfevol score`` and for release cards.

The PNG carries no software or version stamp, so the same values give the same bytes on any
matplotlib: a release whose scores did not change does not commit a changed plot.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import MissingDependencyError
from ..extras import install_line
from ..stats import finite


def histogram_png(values: Sequence[float | None], path: str | Path, *, label: str, title: str, bins: int = 30) -> Path | None:
    """Draw the finite ``values`` as a histogram with their mean marked; None if there are none.

    ``label`` names the x axis; rows left out (missing or undefined) are counted in the title.

    Raises:
        MissingDependencyError: matplotlib is not installed.
    """
    shown = finite(values)
    if not shown:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "plotting score distributions", install_line("plots")) from exc
    mean = sum(shown) / len(shown)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        ax.hist(shown, bins=min(bins, max(len(set(shown)), 1)), color="#4c72b0", edgecolor="white")
        ax.axvline(mean, color="#dd8452", linestyle="--", label=f"mean {mean:.4g}")
        ax.set_xlabel(label)
        ax.set_ylabel("rows")
        skipped = len(values) - len(shown)
        ax.set_title(title + (f" ({skipped} undefined rows not shown)" if skipped else ""), fontsize=10)
        ax.legend()
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return out
