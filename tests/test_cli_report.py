"""The reads behind the CLI summaries: counts, sums and the first matching rows, over the rows a dataset shows."""

from __future__ import annotations

from collections import Counter

from datasets import Dataset

from hfevol.cli import _report


def _shuffled() -> tuple[Dataset, list[dict]]:
    rows = [{"status": ["ok", "failed", "skipped", None][i % 4], "reason": None if i % 4 == 0 else f"r{i % 3}", "n": i, "m": 2 * i} for i in range(50)]
    ds = Dataset.from_list(rows).shuffle(seed=3).select(range(40))  # an indices mapping: the table underneath holds other rows
    shown = [rows[i] for i in ds["n"]]
    return ds, shown


def test_counts_and_sums_follow_the_rows_the_dataset_shows(monkeypatch):
    ds, shown = _shuffled()
    monkeypatch.setattr(_report, "_BATCH", 7)  # several batches
    assert _report.value_counts(ds, "status") == Counter(r["status"] for r in shown)
    assert _report.value_counts(ds, "reason", where="status", among=("failed", "skipped")) == Counter(
        r["reason"] for r in shown if r["status"] in ("failed", "skipped")
    )
    assert _report.value_counts(ds, "reason", where="status", among=("ok",), exclude=True) == Counter(r["reason"] for r in shown if r["status"] != "ok")
    assert _report.column_sum(ds, "n", "m") == sum(r["n"] + r["m"] for r in shown)


def test_first_rows_reads_only_until_it_has_enough(monkeypatch):
    ds, shown = _shuffled()
    monkeypatch.setattr(_report, "_BATCH", 4)
    expected = [{"n": r["n"]} for r in shown if r["status"] == "skipped"][:3]
    assert _report.first_rows(ds, 3, where="status", among=("skipped",), columns=("n",)) == expected
    assert _report.first_rows(ds, 2, where="status", among=("nothing",), columns=("n",)) == []
