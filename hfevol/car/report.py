"""The CAR report: a table (printed, CSV, Markdown), a bar chart (PNG) and the run's settings (JSON).

``car.csv`` and ``car.md`` are the names ``hfevol publish`` looks for at the top of an output
folder (:data:`hfevol.publish.source.CAR_TABLES`): the table goes into the dataset card.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .compare import CarResult
from .metrics import DIRECTIONS, METRICS

COLUMNS = ("rank", "generator", "rows", "reward", "loss", "car", "perplexity", "ifd", "length", "measured")
FILES = {"csv": "car.csv", "markdown": "car.md", "chart": "car_chart.png", "run": "car_run.json", "rows": "car_rows.jsonl"}


def table_rows(result: CarResult) -> list[dict[str, Any]]:
    out = []
    for r in result.table.rows:
        row = {"rank": r.rank, "generator": r.generator, "rows": r.rows, **{m: r.value(m) for m in ("reward", "loss", "car", "perplexity", "ifd", "length")}}
        row["measured"] = result.scores.get(r.generator, math.nan) if result.scores else math.nan
        out.append(row)
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def markdown(result: CarResult) -> str:
    """The table, the settings and (with measured scores) the Spearman ρ, as Markdown."""
    rows = table_rows(result)
    columns = [c for c in COLUMNS if c != "measured" or result.scores]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row[c]) for c in columns) + " |" for row in rows]
    t = result.table
    notes = [
        "",
        f"CAR = reward / (1 + β · loss), β = {t.beta:g} (the paper does not state its β), loss = the student's mean token loss on the responses "
        f"({'over all response tokens' if t.loss_averaging == 'token' else 'mean of per-row means'}: loss_averaging={t.loss_averaging}).",
        f"Reward: {json.dumps(result.reward, sort_keys=True)}"
        + (f"; every reward shifted by {t.reward_offset:+.4f} (a mean reward was negative)" if t.reward_offset else "")
        + ".",
        f"Student: {json.dumps(result.student, sort_keys=True)}.",
        f"Rows compared: {len(result.coverage.rows)} of {result.coverage.total}"
        + ("".join(f"; {g} missed {n}" for g, n in result.coverage.missing.items() if n))
        + ("".join(f"; {g}: {n} unrated" for g, n in result.unrated.items() if n))
        + ".",
        "Ranked by CAR (1 = recommended). Perplexity = exp(loss), lower is better; ifd = mean L(A|Q)/L(A) by the student; length = mean response tokens.",
    ]
    if result.rho:
        notes += [
            "",
            "Spearman ρ with the measured scores (each metric oriented so that + means it ranks like the scores):",
            "",
            "| metric | direction | ρ |",
            "|---|---|---|",
        ]
        notes += [f"| {m} | {'higher' if DIRECTIONS[m] > 0 else 'lower'} is better | {_fmt(result.rho[m]) or 'undefined (constant)'} |" for m in METRICS]
    if result.beta_fit is not None:
        f = result.beta_fit
        notes += [
            "",
            f"β fit: β = {f.beta:g}, in-sample ρ = {f.rho_in_sample:.4f} (optimistic); leave-one-out ρ = {_fmt(f.rho_leave_one_out) or 'n/a (needs 4 scored generators)'}.",
        ]
    return "\n".join(lines + notes) + "\n"


def chart(result: CarResult, path: Path) -> None:
    """Bars of CAR, reward and loss per generator, best first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.table.rows
    names = [r.generator for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(4 + 1.2 * len(names) * 3 / 2, 3.6), constrained_layout=True)
    for ax, metric, title in zip(axes, ("car", "reward", "loss"), (f"CAR (β = {result.table.beta:g})", "mean reward", "student loss (nats/token)")):
        ax.bar(names, [r.value(metric) for r in rows], color=["#2a6f97" if metric == "car" else "#8d99ae"] * len(rows))
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.suptitle(f"Which generator suits student {result.student.get('model', '?')}", fontsize=11)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(result: CarResult, out: str | Path) -> dict[str, Path]:
    """Write the CSV, Markdown, PNG, settings JSON and per-row JSONL into ``out``; return their paths."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / v for k, v in FILES.items()}
    rows = table_rows(result)
    with paths["csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in rows)
    paths["markdown"].write_text(markdown(result))
    chart(result, paths["chart"])
    run = {
        "beta": result.table.beta,
        "loss_averaging": result.table.loss_averaging,
        "reward_offset": result.table.reward_offset,
        "reward": result.reward,
        "student": result.student,
        "rows_compared": len(result.coverage.rows),
        "rows_total": result.coverage.total,
        "missing": result.coverage.missing,
        "unrated": result.unrated,
        "best": result.table.best,
        "measured_scores": result.scores,
        "spearman": {k: (None if math.isnan(v) else v) for k, v in result.rho.items()},
        "beta_fit": None
        if result.beta_fit is None
        else {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(result.beta_fit).items()},
    }
    paths["run"].write_text(json.dumps(run, indent=2, sort_keys=True) + "\n")
    with paths["rows"].open("w") as f:
        for label, items in result.rows.items():
            for i, item in zip(result.coverage.rows, items):
                f.write(
                    json.dumps({"generator": label, "row": i, **{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in item.items()}}) + "\n"
                )
    return paths
