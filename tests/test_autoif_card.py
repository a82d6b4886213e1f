"""The AutoIF section of a release's card: an ``hfevol autoif`` run through the TGI test server, published locally.

Every number the card shows is counted here again from the output's rows, its ``_autoif``
tables and its record, by code of its own (the section's code is not reused).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from test_autoif_pipeline import AutoIFEngine, _argv, _jsonl, inputs  # noqa: F401 - inputs: the pipeline tests' seed and query files, a fixture

from hfevol.cli import main
from hfevol.testing import TGITestServer

pytestmark = pytest.mark.integration


def _section(card: str) -> str:
    start = card.index("## AutoIF")
    end = card.find("\n## ", start + 1)
    return card[start : end if end != -1 else len(card)]


def _tables(section: str) -> list[list[list[str]]]:
    """Each Markdown table of ``section``: its body rows as lists of cells (header and rule left out)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in section.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if current is None:
                current = []
                tables.append(current)
                current.append(cells)  # header, dropped below
            elif not all(set(c) <= set("-: ") for c in cells):
                current.append(cells)
        else:
            current = None
    return [t[1:] for t in tables]


def _bin_of(rate: float) -> int:
    """The bin of ``rate``: [k/10, (k+1)/10), the last one holding 1.0 (counted by comparison, not by the code under test)."""
    for k in range(10):
        if k / 10 <= rate < (k + 1) / 10 or (k == 9 and rate == 1.0):
            return k
    raise AssertionError(rate)


def test_the_card_of_an_autoif_release_shows_the_counts_of_every_step_and_the_pass_rate_plot(tmp_path: Path, inputs, capsys):
    out = tmp_path / "out"
    with TGITestServer(AutoIFEngine()) as srv:
        assert main(_argv(srv.url, out, inputs, "--judge", srv.url)) == 0
    release = tmp_path / "release"
    assert main(["publish", str(out), "--version", "v1", "--local-dir", str(release)]) == 0

    import pyarrow.parquet as pq

    rows = pq.read_table(out / "data" / "train.parquet").to_pylist()
    constraints = _jsonl(out / "_autoif" / "constraints.jsonl")
    verifiers = _jsonl(out / "_autoif" / "verifiers.jsonl")
    record = json.loads((out / "hfevol_run.json").read_text())
    checked = [c for c in constraints if c["crossval_status"] != "not_checked"]
    rates = [r["pass_rate"] for r in rows if r["pass_rate"] is not None]
    expected_steps = {
        "seed constraints": sum(c["origin"] == "seed" for c in constraints),
        "model replies": 1,  # --constraint-samples 1
        "lines parsed": sum(c["origin"] == "generated" for c in constraints),
        "lines dropped (preambles, blanks)": 1,  # the reply's preamble "Sure! Here are ..."
        "duplicates": sum(c["constraint_status"] == "duplicate" for c in constraints),
        "unique constraints": sum(c["constraint_status"] in ("ok", "not_used") for c in constraints),
        "constraints sent to verification": sum(c["constraint_status"] == "ok" for c in constraints),
        "function samples": len(verifiers),
        "functions parsed": sum(v["verifier_func"] is not None for v in verifiers),
        "constraints checked": len(checked),
        "constraints kept": sum(c["crossval_status"] == "kept" for c in constraints),
        "functions kept": sum(bool(v["kept"]) for v in verifiers),
        "test cases": sum(c["cases_candidates"] for c in checked),
        "test cases kept": sum(len(c["cases_kept"]) for c in checked),
        "answers": len(rows),
        "answers verified": len(rates),
        "answers passing every kept function": sum(r == 1.0 for r in rates),
        "answers kept": sum(r["autoif_status"] == "ok" for r in rows),
        "judge replies without a score": sum(r["judge_score"] is None for r in rows),
    }
    # the script, by hand: 2 seeds + 2 lines (one a copy), 3 verified, 2 kept with 3 functions; 8 answers, 4 pass, the judge keeps those 4
    assert [
        expected_steps[k] for k in ("seed constraints", "duplicates", "constraints checked", "constraints kept", "functions kept", "answers", "answers kept")
    ] == [2, 1, 3, 2, 3, 8, 4]

    card = (release / "README.md").read_text()
    section = _section(card)
    steps, spread, histogram = _tables(section)
    assert {what: int(n) for _, what, n in steps} == expected_steps
    assert [step for step, _, _ in steps] == sorted(step for step, _, _ in steps)  # pipeline order
    per_constraint = Counter(len(c["verifiers_kept"]) for c in checked)
    assert [(int(k), int(n)) for k, n in spread] == sorted(per_constraint.items()) == [(0, 1), (1, 1), (2, 1)]
    bins = Counter(_bin_of(r) for r in rates)
    assert [int(n) for _, n in histogram] == [bins.get(k, 0) for k in range(10)]
    assert histogram[0][0] == "[0.0, 0.1)" and histogram[-1][0] == "[0.9, 1.0]"
    assert f"level **{record['sandbox']}**" in section and "preset `ea`" in section and "function accuracy >= 0.8" in section
    assert "the released rows" in section
    # the plot ships in the release and the card shows it
    plot = release / "plots" / "autoif_pass_rate.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![AutoIF pass rate per answer](plots/autoif_pass_rate.png)" in section
    # drawn byte for byte the same again: publishing the same output a second time changes nothing
    capsys.readouterr()
    assert main(["publish", str(out), "--version", "v1", "--local-dir", str(release)]) == 0
    assert ": unchanged" in capsys.readouterr().out


def test_without_a_pass_rate_column_the_histogram_comes_from_the_record(tmp_path: Path):
    """The DPO folder's record carries the run's summary but its rows have no pass rate: the card shows the record's bins, no plot."""
    from _publish_helpers import make_output

    summary = {"preset": "autoif", "sandbox": "seccomp", "config": {"responses_per_query": 2, "rules": {"case_agreement": "> 0.5", "min_pass_rate": None}},
               "constraints": {"seeds": 3, "checked": 2, "kept": 1}, "functions": {"kept": 4}, "functions_per_constraint": {"c0": 4, "c1": 0},
               "answers": {"rows": 6, "pass_rate_histogram": {"counts": [1, 0, 0, 0, 0, 2, 0, 0, 0, 3], "verified": 6}}, "dpo_pairs": 5}  # fmt: skip
    folder = make_output(tmp_path / "out", scores=False, autoif=summary)
    assert main(["publish", str(folder), "--version", "v1", "--local-dir", str(tmp_path / "release")]) == 0
    section = _section((tmp_path / "release" / "README.md").read_text())
    steps, spread, histogram = _tables(section)
    got = {what: int(n) for _, what, n in steps}
    assert (got["seed constraints"], got["constraints kept"], got["functions kept"], got["answers verified"], got["pairs"]) == (3, 1, 4, 6, 5)
    assert [(int(k), int(n)) for k, n in spread] == [(0, 1), (4, 1)]
    assert [int(n) for _, n in histogram] == [1, 0, 0, 0, 0, 2, 0, 0, 0, 3]
    assert "as the run record counted them" in section and "level **seccomp**" in section and "min pass rate" not in section
    assert "autoif_pass_rate.png" not in section and not (tmp_path / "release" / "plots" / "autoif_pass_rate.png").exists()


def test_a_card_without_an_autoif_run_has_no_autoif_section(tmp_path: Path):
    from _publish_helpers import make_output

    folder = make_output(tmp_path / "out")
    assert main(["publish", str(folder), "--version", "v1", "--local-dir", str(tmp_path / "release")]) == 0
    assert "## AutoIF" not in (tmp_path / "release" / "README.md").read_text()
