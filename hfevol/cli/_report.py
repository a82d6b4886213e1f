"""The summary printed at the end of a run."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _short(text: Any, width: int) -> str:
    if text is None:
        return "-"
    return textwrap.shorten(" ".join(str(text).split()), width=width, placeholder=" …")


def print_endpoint_summary(stats: dict[str, Any], *, cache_hits: int | None) -> None:
    """Requests sent, answered from the cache, retried and failed, by cause."""
    retries, failures = stats["retries"], stats["failures"]
    print("\n   endpoint requests:")
    print(f"     answered       {stats['successes']:>6}")
    if cache_hits is not None:
        print(f"     from cache     {cache_hits:>6}  (not sent)")
    print(f"     retries        {sum(retries.values()):>6}" + (f"  ({_by_cause(retries)})" if retries else ""))
    print(f"     failed         {sum(failures.values()):>6}" + (f"  ({_by_cause(failures)})" if failures else ""))


def _by_cause(counts: dict[str, int]) -> str:
    return ", ".join(f"{cause} {n}" for cause, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def print_rounds_summary(title: str, report: dict[str, Any], rows: Sequence[dict[str, Any]], *, out: Path, seconds: float, examples: int = 3) -> None:
    """Per round: rows and statuses; the elimination counts per rule; a few evolved rows."""
    rounds = report["rounds"]
    total = sum(r["rows"] for r in rounds.values())
    statuses = sorted({s for r in rounds.values() for s in r["status"]}, key=lambda s: (s != "ok", s))
    print(f"\n== {title}: {total} rows over {len(rounds)} round(s) in {seconds:.1f} s")
    print("   " + f"{'round':<7}{'rows':>6}" + "".join(f"{s:>14}" for s in statuses))
    for number, r in rounds.items():
        print("   " + f"{number:<7}{r['rows']:>6}" + "".join(f"{r['status'].get(s, 0):>14}" for s in statuses))
    if report["eliminated"]:
        print("   eliminated, by rule: " + ", ".join(f"{rule} {n}" for rule, n in sorted(report["eliminated"].items(), key=lambda kv: -kv[1])))
    reasons = Counter(r["evol_reason"] for r in rows if r["evol_status"] not in ("ok", "eliminated") and r["evol_reason"])
    for reason, n in reasons.most_common(3):
        print(f"   {n:>5} × {_short(reason, 90)}")
    shown = [r for r in rows if r["evol_status"] == "ok"][:examples]
    for r in shown:
        print(f"\n   round {r['round']} ({r['evol_operation']}), from: {_short(r['parent_instruction'], 100)}\n   to: {_short(r['evolved_instruction'], 110)}")
    print(f"\n   output: {out}  (every round: load_dataset(out); one: load_dataset(out, data_dir='data/round_N'))")
