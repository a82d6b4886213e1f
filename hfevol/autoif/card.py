"""The AutoIF section of a dataset card: what each step kept, functions per constraint, the sandbox, pass rates.

:func:`autoif_section` reads the summary ``hfevol autoif`` stores in the run record (the extras
key ``autoif``) and, when the released data has a ``pass_rate`` column, the pass rates of the
rows actually released. The card shows the section; ``hfevol publish`` draws
:data:`PLOT_PATH` from :attr:`AutoIFSection.pass_rates`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .answers import HISTOGRAM_BINS as BINS
from .answers import pass_rate_histogram

if TYPE_CHECKING:
    import pyarrow as pa

PLOT_PATH = "plots/autoif_pass_rate.png"
"""Where the release holds the pass-rate histogram."""


@dataclass(frozen=True)
class AutoIFSection:
    """What the card's AutoIF section shows."""

    preset: str
    sandbox: str
    rules: dict[str, Any]
    """The cross-validation and filter thresholds, as the record stores them (``">= 0.8"``...)."""
    steps: list[tuple[str, str, int]]
    """(step, what is counted, count), in pipeline order."""
    functions_per_constraint: list[tuple[int, int]]
    """(functions kept, constraints with that many), for every cross-validated constraint, fewest first."""
    histogram: list[tuple[str, int]]
    """(bin as ``[0.0, 0.1)``, answers), ten bins over [0, 1]."""
    histogram_source: str
    """``data`` (the released rows' ``pass_rate`` column) or ``record`` (the run's summary)."""
    pass_rates: tuple[float, ...] = ()
    """The released rows' finite pass rates (for the plot); empty when the data has none."""
    plot: str | None = None
    """The plot's path in the release, once drawn."""


def _count(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _steps(summary: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    c, f = summary.get("constraints") or {}, summary.get("functions") or {}
    cases, a = summary.get("cases") or {}, summary.get("answers") or {}
    config = summary.get("config") or {}
    verified = (a.get("pass_rate_histogram") or {}).get("verified")
    steps = [
        ("1 constraints", "seed constraints", _count(c.get("seeds"))),
        ("1 constraints", "model replies", _count(c.get("samples"))),
        ("1 constraints", "lines parsed", _count(c.get("generated_lines"))),
        ("1 constraints", "lines dropped (preambles, blanks)", _count(c.get("dropped_lines"))),
        ("1 constraints", "duplicates", _count(c.get("duplicates"))),
        ("1 constraints", "unique constraints", _count(c.get("unique"))),
        ("1 constraints", "constraints sent to verification", _count(c.get("used"))),
        ("2 verifiers", "function samples", _count(f.get("samples"))),
        ("2 verifiers", "functions parsed", _count(f.get("parsed"))),
        ("3 cross-validation", "constraints checked", _count(c.get("checked"))),
        ("3 cross-validation", "constraints kept", _count(c.get("kept"))),
        ("3 cross-validation", "functions kept", _count(f.get("kept"))),
        ("3 cross-validation", "test cases", _count(cases.get("candidates"))),
        ("3 cross-validation", "test cases kept", _count(cases.get("kept"))),
        ("4 answers", "answers", _count(a.get("rows"))),
        ("5 verification", "answers verified", _count(verified)),
        ("5 verification", "answers passing every kept function", _count(a.get("passing_all"))),
        ("5 verification", "answers kept", _count(a.get("kept"))),
    ]
    if "judge" in a:
        steps.append(("5 verification", "judge replies without a score", _count(a["judge"].get("unparsed"))))
    if _count(config.get("responses_per_query")) > 1:
        steps.append(("6 DPO pairs", "pairs", _count(summary.get("dpo_pairs"))))
    return steps


def _label(k: int) -> str:
    return f"[{k / BINS:.1f}, {(k + 1) / BINS:.1f}{']' if k == BINS - 1 else ')'}"


def autoif_section(extras: Mapping[str, Any], table: "pa.Table | None" = None) -> AutoIFSection | None:
    """The section for a record's ``extras`` and the released ``table``; None when no AutoIF run made the data.

    The histogram counts the released rows' ``pass_rate`` column when ``table`` has one (rows a
    later command filtered out are then not counted), else the run record's histogram.
    """
    summary = extras.get("autoif")
    if not isinstance(summary, Mapping):
        return None
    per = summary.get("functions_per_constraint") or {}
    spread = sorted(Counter(_count(n) for n in per.values()).items())
    rates: list[float] = []
    if table is not None and "pass_rate" in table.column_names:
        rates = [float(r) for r in table.column("pass_rate").to_pylist() if isinstance(r, (int, float)) and math.isfinite(r)]
        counts, source = pass_rate_histogram(rates)["counts"], "data"
    else:
        recorded = (summary.get("answers") or {}).get("pass_rate_histogram") or {}
        counts, source = [_count(n) for n in recorded.get("counts") or []], "record"
        counts = (counts + [0] * BINS)[:BINS]
    rules = (summary.get("config") or {}).get("rules") or {}
    return AutoIFSection(
        preset=str(summary.get("preset", "?")),
        sandbox=str(summary.get("sandbox") or extras.get("sandbox") or "unknown"),
        rules={k: v for k, v in rules.items() if v is not None and (k != "min_judge_score" or "judge" in (summary.get("answers") or {}))},
        steps=_steps(summary),
        functions_per_constraint=spread,
        histogram=[(_label(k), n) for k, n in enumerate(counts)],
        histogram_source=source,
        pass_rates=tuple(rates),
    )
