"""The side-by-side table of several evolvers (per evolver and round) and its plots.

Input: per evolver label, its analysed dataset (:func:`hfevol.analysis.analyze.analyze`).
Output files (:func:`write`):

- ``evolvers.csv`` / ``evolvers.md``: one line per evolver and round: rows, ok rows and
  survival, eliminations by rule, IC-IFD (mean, median, quartiles), IFD, MND (mean,
  median, rows with near-duplicates), difficulty levels (% of ok rows, and unparsed),
  difficulty score / expected level, instruction reward, top-1 (when recorded), length;
- ``evolver_difficulty.png``: difficulty-level bars per round (the paper's Figure 2);
- ``evolver_mnd.png`` and ``evolver_top1.png``: MND and top-1 densities overlaid per
  evolver (Figures 4 and 5), one panel per round;
- ``evolver_ic_ifd.png``: median IC-IFD per round with its quartiles.

A plot whose measure is absent everywhere is not drawn (the table says ``-``).
"""

from __future__ import annotations

import contextlib
import csv
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .analyze import round_summary
from .difficulty import LEVELS

TABLE_CSV = "evolvers.csv"
TABLE_MD = "evolvers.md"
PLOTS = {"difficulty": "evolver_difficulty.png", "mnd": "evolver_mnd.png", "top1": "evolver_top1.png", "ic_ifd": "evolver_ic_ifd.png"}
COMPARISON_FILES: tuple[str, ...] = (TABLE_CSV, TABLE_MD, *PLOTS.values())


def _stat(entry: dict[str, Any], column: str, key: str = "mean") -> float | None:
    value = entry.get(column)
    return value.get(key) if isinstance(value, dict) else None


def table_rows(summaries: Mapping[str, dict[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One dict per evolver and round (the CSV's lines, with None where a measure is absent)."""
    lines = []
    for label, rounds in summaries.items():
        for r, e in rounds.items():
            ok = e["ok"]
            levels = e.get("difficulty_levels")
            line: dict[str, Any] = {
                "evolver": label,
                "round": r,
                "rows": e["rows"],
                "ok": ok,
                "survival": e["survival"],
                "eliminated": "; ".join(f"{k}: {v}" for k, v in sorted(e["eliminated"].items())) or "",
                "not_ok": "; ".join(f"{k}: {v}" for k, v in sorted(e["status"].items()) if k != "ok") or "",
                "ic_ifd_mean": _stat(e, "ic_ifd"),
                "ic_ifd_median": _stat(e, "ic_ifd", "median"),
                "ic_ifd_q1": _stat(e, "ic_ifd", "q1"),
                "ic_ifd_q3": _stat(e, "ic_ifd", "q3"),
                "ifd_mean": _stat(e, "ifd"),
                "mnd_mean": _stat(e, "mnd"),
                "mnd_median": _stat(e, "mnd", "median"),
                "near_duplicate_rows": e.get("rows_with_near_duplicates"),
            }
            for level in LEVELS:
                line[f"pct_{level.replace(' ', '_')}"] = 100.0 * levels[level] / ok if levels and ok else None
            line["difficulty_unparsed"] = e.get("difficulty_unparsed")
            line["difficulty_score_mean"] = _stat(e, "difficulty_score")
            line["difficulty_expected_mean"] = _stat(e, "difficulty_expected")
            line["instruction_reward_mean"] = _stat(e, "instruction_reward")
            line["top1_mean_k"] = _stat(e, "top1_mean_k")
            line["top1_mean_all"] = _stat(e, "top1_mean_all")
            line["length_words_mean"] = _stat(e, "length_words")
            lines.append(line)
    return lines


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


MD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("evolver", "evolver"), ("round", "round"), ("rows", "rows"), ("ok", "ok"), ("survival", "survival"), ("eliminated", "eliminated"), ("not_ok", "not ok"),
    ("ic_ifd_mean", "IC-IFD"), ("ic_ifd_median", "IC-IFD med."), ("ifd_mean", "IFD"), ("mnd_mean", "MND"), ("mnd_median", "MND med."),
    ("near_duplicate_rows", "near-dup."), ("pct_very_easy", "% v.easy"), ("pct_easy", "% easy"), ("pct_medium", "% medium"),
    ("pct_hard", "% hard"), ("pct_very_hard", "% v.hard"), ("difficulty_unparsed", "unparsed"), ("difficulty_score_mean", "score 0-100"),
    ("difficulty_expected_mean", "level E[1-5]"), ("instruction_reward_mean", "reward"), ("top1_mean_k", "top-1 (first K)"),
    ("top1_mean_all", "top-1 (all)"), ("length_words_mean", "words"),
)  # fmt: skip


def markdown(lines: list[dict[str, Any]]) -> str:
    """The table as Markdown; columns absent for every line are left out."""
    shown = [(k, h) for k, h in MD_COLUMNS if any(line.get(k) not in (None, "") for line in lines) or k in ("evolver", "round", "rows", "ok")]
    out = ["| " + " | ".join(h for _, h in shown) + " |", "|" + "|".join("---" for _ in shown) + "|"]
    for line in lines:
        out.append("| " + " | ".join(_fmt(line.get(k)).replace("|", "\\|") for k, _ in shown) + " |")
    return "\n".join(out)


def _pyplot() -> Any:
    from ..errors import MissingDependencyError

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "the comparison plots") from exc
    return plt


@contextlib.contextmanager
def _figure(path: Path, *args: Any, **kwargs: Any) -> Iterator[Any]:
    """``plt.subplots(*args, **kwargs)``'s axes; on leaving the block the figure is laid out and saved at ``path``, and always closed."""
    plt = _pyplot()
    fig, axes = plt.subplots(*args, dpi=100, **kwargs)
    try:
        yield axes
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


def _legend(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:  # a round where no evolver has values draws no legend
        ax.legend(fontsize=8)


def density(values: list[float], grid: Any) -> Any:
    """A Gaussian kernel density of ``values`` on ``grid`` (Scott's bandwidth, as the paper's plots)."""
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    spread = x.std(ddof=1) if len(x) > 1 else 0.0
    h = max(spread * len(x) ** (-1 / 5), 1e-3)
    z = (np.asarray(grid)[:, None] - x[None, :]) / h
    return np.exp(-0.5 * z * z).sum(axis=1) / (len(x) * h * math.sqrt(2 * math.pi))


def _values(ds: Any, column: str, r: int) -> list[float]:
    from .analyze import _rounds, analysed_rows

    if column not in ds.column_names:
        return []
    rounds, values = _rounds(ds), ds[column]
    return [float(values[i]) for i in analysed_rows(ds) if rounds[i] == r and values[i] is not None and math.isfinite(values[i])]


def _density_plot(datasets: Mapping[str, Any], column: str, label: str, path: Path, rounds: list[int]) -> Path | None:
    import numpy as np

    per = {(name, r): _values(ds, column, r) for name, ds in datasets.items() for r in rounds}
    if not any(len(v) for v in per.values()):
        return None
    everything = [v for vs in per.values() for v in vs]
    lo, hi = min(everything), max(everything)
    pad = (hi - lo) * 0.1 or 0.05
    grid = np.linspace(lo - pad, hi + pad, 200)
    with _figure(path, 1, len(rounds), figsize=(4.2 * len(rounds), 3.4), squeeze=False) as axes:
        for ax, r in zip(axes[0], rounds):
            for name in datasets:
                vs = per[(name, r)]
                if len(vs) >= 2:
                    ax.plot(grid, density(vs, grid), label=f"{name} (n={len(vs)})")
                elif vs:
                    ax.axvline(vs[0], linestyle=":", label=f"{name} (n=1)")
            ax.set_title(f"round {r}", fontsize=10)
            ax.set_xlabel(label)
            ax.set_ylabel("density")
            _legend(ax)
    return path


def _difficulty_plot(summaries: Mapping[str, dict[int, dict[str, Any]]], path: Path, rounds: list[int]) -> Path | None:
    import numpy as np

    if not any("difficulty_levels" in e for s in summaries.values() for e in s.values()):
        return None
    width = 0.8 / max(len(summaries), 1)
    with _figure(path, 1, len(rounds), figsize=(4.6 * len(rounds), 3.4), squeeze=False) as axes:
        for ax, r in zip(axes[0], rounds):
            for k, (name, s) in enumerate(summaries.items()):
                e = s.get(r, {})
                levels, ok = e.get("difficulty_levels") or {}, e.get("ok") or 0
                heights = [100.0 * levels.get(level, 0) / ok if ok else 0.0 for level in LEVELS]
                ax.bar(np.arange(len(LEVELS)) + (k - (len(summaries) - 1) / 2) * width, heights, width, label=name)
            ax.set_xticks(range(len(LEVELS)), [level.replace(" ", "\n") for level in LEVELS], fontsize=8)
            ax.set_ylabel("% of ok rows")
            ax.set_title(f"round {r}", fontsize=10)
            _legend(ax)
    return path


def _ic_ifd_plot(summaries: Mapping[str, dict[int, dict[str, Any]]], path: Path) -> Path | None:
    if not any(_stat(e, "ic_ifd") is not None for s in summaries.values() for e in s.values()):
        return None
    with _figure(path, figsize=(6, 3.6)) as ax:
        for name, s in summaries.items():
            quartiles = [(r, _stat(e, "ic_ifd", "median"), _stat(e, "ic_ifd", "q1"), _stat(e, "ic_ifd", "q3")) for r, e in s.items()]
            points = [(r, m, q1, q3) for r, m, q1, q3 in quartiles if m is not None and q1 is not None and q3 is not None]
            xs, means = [p[0] for p in points], [p[1] for p in points]
            errors = [[m - q1 for _, m, q1, _ in points], [q3 - m for _, m, _, q3 in points]]
            ax.errorbar(xs, means, yerr=errors, marker="o", capsize=3, label=name)
        ax.set_xlabel("round")
        ax.set_ylabel("IC-IFD (median, bars: quartiles)")
        ax.set_xticks(sorted({r for s in summaries.values() for r in s}))
        _legend(ax)
    return path


def write(datasets: Mapping[str, Any], folder: str | Path) -> dict[str, Path]:
    """Write the table (CSV, Markdown) and the plots into ``folder``; returns what was written, by kind."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    summaries = {name: round_summary(ds) for name, ds in datasets.items()}
    lines = table_rows(summaries)
    with (out / TABLE_CSV).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(lines[0]) if lines else ["evolver"])
        writer.writeheader()
        writer.writerows([{k: ("" if v is None else v) for k, v in line.items()} for line in lines])
    (out / TABLE_MD).write_text(markdown(lines) + "\n")
    written = {"table": out / TABLE_CSV, "markdown": out / TABLE_MD}
    rounds = sorted({r for s in summaries.values() for r in s})
    drawn = {
        "difficulty": _difficulty_plot(summaries, out / PLOTS["difficulty"], rounds),
        "mnd": _density_plot(datasets, "mnd", "MND (squared L2 to the nearest other row)", out / PLOTS["mnd"], rounds),
        "top1": _density_plot(datasets, "top1_mean_k", "mean top-1 probability, first K positions", out / PLOTS["top1"], rounds),
        "ic_ifd": _ic_ifd_plot(summaries, out / PLOTS["ic_ifd"]),
    }
    written.update({k: p for k, p in drawn.items() if p is not None})
    return written
