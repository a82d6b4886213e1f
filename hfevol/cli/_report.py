"""The summary printed at the end of a run, and the reads it makes.

A summary reads what it prints, never the whole dataset as Python rows: counts and sums are
taken column by column in Arrow batches (:func:`value_counts`, :func:`column_sum`), and the
example rows are the first few that match (:func:`first_rows`).
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    from datasets import Dataset

_BATCH = 10_000


def _batches(ds: "Dataset", columns: Sequence[str]) -> "Iterator[pa.Table]":
    yield from ds.select_columns(list(dict.fromkeys(columns))).with_format("arrow").iter(batch_size=_BATCH)


def _rows_where(table: "pa.Table", column: str | None, values: Sequence[Any], *, invert: bool = False) -> "pa.Table":
    import pyarrow as pa
    import pyarrow.compute as pc

    if column is None:
        return table
    mask = pc.fill_null(pc.is_in(table.column(column), value_set=pa.array(list(values), type=table.schema.field(column).type)), False)
    return table.filter(pc.invert(mask) if invert else mask)


def value_counts(ds: "Dataset", column: str, *, where: str | None = None, among: Sequence[Any] = (), exclude: bool = False) -> Counter:
    """How often each value of ``column`` occurs (None counted too), over the rows whose ``where`` is in ``among``
    (with ``exclude``: is not in ``among``), or over every row."""
    import pyarrow.compute as pc

    counts: Counter = Counter()
    for table in _batches(ds, [column, *([where] if where else [])]):
        for item in pc.value_counts(_rows_where(table, where, among, invert=exclude).column(column)).to_pylist():
            counts[item["values"]] += item["counts"]
    return counts


def column_sum(ds: "Dataset", *columns: str) -> int | float:
    """The sum of the numeric ``columns`` over every row (missing values count as 0)."""
    import pyarrow.compute as pc

    total: int | float = 0
    for table in _batches(ds, columns):
        for name in columns:
            total += pc.sum(table.column(name)).as_py() or 0
    return total


def first_rows(ds: "Dataset", k: int, *, where: str, among: Sequence[Any], columns: Sequence[str]) -> list[dict[str, Any]]:
    """The first ``k`` rows (``columns`` only) whose ``where`` is in ``among``, read batch by batch until found."""
    found: list[dict[str, Any]] = []
    for table in _batches(ds, [*columns, where]):
        found += _rows_where(table, where, among).select(list(columns)).slice(0, k - len(found)).to_pylist()
        if len(found) >= k:
            break
    return found


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


def print_rounds_summary(title: str, report: dict[str, Any], evolved: "Dataset", *, out: Path, seconds: float, examples: int = 3) -> None:
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
    reasons = value_counts(evolved, "evol_reason", where="evol_status", among=("ok", "eliminated"), exclude=True)
    for reason, n in [(reason, n) for reason, n in reasons.most_common() if reason][:3]:
        print(f"   {n:>5} × {_short(reason, 90)}")
    shown = first_rows(evolved, examples, where="evol_status", among=("ok",), columns=("round", "evol_operation", "parent_instruction", "evolved_instruction"))
    for r in shown:
        print(f"\n   round {r['round']} ({r['evol_operation']}), from: {_short(r['parent_instruction'], 100)}\n   to: {_short(r['evolved_instruction'], 110)}")
    print(f"\n   output: {out}  (every round: load_dataset(out); one: load_dataset(out, data_dir='data/round_N'))")
