"""``hfevol analyze`` and ``hfevol compare-evolvers`` end to end, and their bad-input errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from hfevol.cli import main
from hfevol.testing import TGITestServer


def seeds_file(path: Path, n: int, **extra: list) -> Path:
    topics = [
        "rainbows",
        "prime numbers",
        "sorting a list in Python",
        "the French revolution",
        "photosynthesis",
        "interest rates",
        "volcanoes",
        "chess openings",
    ]
    rows = [
        {"instruction": f"Explain {topics[i % len(topics)]} to a curious twelve-year-old.", "input": "", **{k: v[i] for k, v in extra.items()}}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def evolved_folder(tmp_path: Path, srv: TGITestServer, n: int = 6, rounds: int = 2) -> Path:
    out = tmp_path / "evolved"
    assert (
        main(
            [
                "evolve",
                "--dataset",
                str(seeds_file(tmp_path / "seeds.jsonl", n)),
                "--rounds",
                str(rounds),
                "--out",
                str(out),
                "--endpoint",
                srv.url,
                "--no-elimination",
            ]
        )
        == 0
    )
    return out


def plain_mnd(vectors: np.ndarray) -> list[float]:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return [min(float(((unit[i] - unit[j]) ** 2).sum()) for j in range(len(unit)) if j != i) for i in range(len(unit))]


def test_analyze_an_endpoint_evolved_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import datasets

    from hfevol.analysis.embed import Embedder, row_text

    with TGITestServer() as srv:
        evolved = evolved_folder(tmp_path, srv)
        capsys.readouterr()
        out = tmp_path / "analysed"
        assert main(["analyze", "--dataset", str(evolved), "--out", str(out), "--embedder", "minilm", "--judge", srv.url, "--label", "echo"]) == 0
    printed = capsys.readouterr().out
    ds = datasets.load_dataset(str(out), split="train")
    embedder = Embedder(model="minilm", device="cpu")
    for r in (1, 2):
        part = ds.filter(lambda x, r=r: x["round"] == r)
        want = plain_mnd(embedder.encode([row_text(q, i) for q, i in zip(part["instruction"], part["input"])]))
        assert part["mnd"] == pytest.approx(want, abs=1e-5)
        ids = part["id"]
        for row in part:
            assert row["mnd_neighbour"] in ids and row["mnd_neighbour"] != row["id"]
    # the echo server repeats the prompt's last line ("Difficulty:"), so every level reply is unreadable: counted, not dropped
    assert ds["difficulty_level"] == [None] * len(ds)
    record = json.loads((out / "hfevol_run.json").read_text())
    assert [c["command"] for c in record["commands"]] == ["evolve", "analyze"]
    stage = record["stages"][-1]
    assert stage["stage"] == "analysis" and stage["judge_unparsed"]["level"] == len(ds) and stage["mnd"]["form"] == "squared_l2"
    assert stage["embedder"]["model"].startswith("all-MiniLM-L6-v2")
    assert f"unparsed replies level: {len(ds)}" in printed and "no top-1 probability columns" in printed
    table = list(csv.DictReader((out / "evolvers.csv").open()))
    assert [(t["evolver"], t["round"], t["rows"]) for t in table] == [("echo", "1", "6"), ("echo", "2", "6")]
    assert float(table[0]["mnd_mean"]) == pytest.approx(float(np.mean(ds.filter(lambda x: x["round"] == 1)["mnd"])), rel=1e-9)
    assert (out / "evolver_mnd.png").is_file() and (out / "evolver_difficulty.png").is_file()


def test_analyze_reads_recorded_top1_columns(tmp_path: Path) -> None:
    import datasets

    with TGITestServer() as srv:
        evolved = evolved_folder(tmp_path, srv, n=4, rounds=1)
    ds = datasets.load_dataset(str(evolved), split="train")
    top1 = [0.9, 0.5, 0.7, 0.3]
    ds = ds.add_column("top1_mean_k", top1).add_column("top1_mean_all", [0.8] * 4).add_column("top1_positions", [5] * 4)
    ds.to_json(tmp_path / "with_top1.jsonl")
    out = tmp_path / "analysed"
    assert main(["analyze", "--dataset", str(tmp_path / "with_top1.jsonl"), "--out", str(out), "--embedder", "none"]) == 0
    table = list(csv.DictReader((out / "evolvers.csv").open()))
    assert float(table[0]["top1_mean_k"]) == pytest.approx(sum(top1) / 4) and float(table[0]["top1_mean_all"]) == pytest.approx(0.8)
    assert "top-1 (first K)" in (out / "evolvers.md").read_text()
    assert (out / "evolver_top1.png").is_file() and not (out / "evolver_mnd.png").exists()


def test_compare_evolvers_with_an_endpoint_and_a_column(tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_lm_dir: str) -> None:
    import datasets
    from _tiny_lm import save_tiny_model

    scorer = str(save_tiny_model(tmp_path / "scorer", context=1024))
    alt = [f"Write a limerick about item {i} that rhymes." for i in range(5)]
    seeds = seeds_file(tmp_path / "seeds.jsonl", 5, alt=alt, blank=[""] * 5)
    out = tmp_path / "cmp"
    with TGITestServer() as srv:
        argv = ["compare-evolvers", "--dataset", str(seeds), "--rounds", "2", "--evolver", f"echo={srv.url}", "--evolver", "mine=column:alt", "--evolver", "blank=column:blank",
                "--no-elimination", "--responder", srv.url, "--scorer", scorer, "--embedder", "minilm", "--judge", f"probs:local:{scorer}", "--out", str(out)]  # fmt: skip
        assert main(argv) == 0
    printed = capsys.readouterr().out
    table = list(csv.DictReader((out / "evolvers.csv").open()))
    assert [(t["evolver"], t["round"]) for t in table] == [("echo", "1"), ("echo", "2"), ("mine", "1"), ("blank", "1")]
    assert all(t["ic_ifd_mean"] and t["mnd_mean"] and t["difficulty_expected_mean"] for t in table[:3])
    # an evolver with nothing usable is a line of the table and a note, and the others' work is kept
    assert (table[3]["ok"], table[3]["not_ok"], table[3]["mnd_mean"]) == ("0", "failed: 5", "")
    assert "blank: 0 ok rows of 5" in printed and "nothing to analyse" in printed
    mine = datasets.load_dataset(str(out), data_dir="data/mine_round_1", split="train")
    assert mine["instruction"] == alt and all(v is not None for v in mine["ic_ifd"])
    assert sum(float(t[f"pct_{k}"]) for t in table[:1] for k in ("very_easy", "easy", "medium", "hard", "very_hard")) == pytest.approx(100.0)
    for name in ("evolvers.md", "evolver_difficulty.png", "evolver_mnd.png", "evolver_ic_ifd.png"):
        assert (out / name).is_file(), name
    assert not (out / "evolver_top1.png").exists()  # nothing recorded top-1
    record = json.loads((out / "hfevol_run.json").read_text())
    assert set(record["stages"][0]["evolvers"]) == {"echo", "mine", "blank"}
    assert "| echo | 2 |" in printed and "no top-1 probability columns" in printed
    release = tmp_path / "release"
    assert main(["publish", str(out), "--version", "v1", "--local-dir", str(release)]) == 0
    card = (release / "README.md").read_text()
    assert "## Which evolver?" in card and (out / "evolvers.md").read_text().strip() in card
    assert "![evolver_mnd.png](evolver_mnd.png)" in card and "evolver_top1.png" not in card
    for name in ("evolvers.csv", "evolvers.md", "evolver_mnd.png", "evolver_difficulty.png", "evolver_ic_ifd.png"):
        assert (release / name).read_bytes() == (out / name).read_bytes(), name


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    tail = err[err.index("\nerror: ") + 1 :] if not err.startswith("error: ") else err  # after any progress bars
    assert len(tail.strip().splitlines()) <= 2, tail  # one line, plus its hint
    return tail


def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    seeds = seeds_file(tmp_path / "seeds.jsonl", 3)
    err = _fails(["compare-evolvers", "--dataset", str(seeds), "--evolver", "embedded", "--out", str(tmp_path / "one")], capsys)
    assert "two or more --evolver, got 1" in err and "hfevol analyze" in err
    err = _fails(["compare-evolvers", "--dataset", str(seeds), "--evolver", "embedded", "--evolver", "embedded", "--out", str(tmp_path / "two")], capsys)
    assert "two evolvers are labelled 'embedded'" in err
    err = _fails(["analyze", "--dataset", str(seeds), "--out", str(tmp_path / "a1")], capsys)
    assert "has no evolved instructions" in err and "'evol_status'" in err and "hfevol evolve" in err
    with TGITestServer() as srv:
        single = evolved_folder(tmp_path, srv, n=1, rounds=1)
    err = _fails(["analyze", "--dataset", str(single), "--out", str(tmp_path / "a2"), "--embedder", "minilm"], capsys)
    assert "MND needs at least 2 ok rows in a round" in err and "round 1: 1" in err
    err = _fails(["analyze", "--dataset", str(single), "--out", str(tmp_path / "a3"), "--embedder", "no-such/embedder"], capsys)
    assert "cannot load embedder 'no-such/embedder'" in err and "pip install 'hfevol[analysis]'" in err
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    err = _fails(["analyze", "--dataset", str(single), "--out", str(tmp_path / "a4"), "--embedder", "minilm"], capsys)
    assert "needs the 'sentence-transformers' package" in err and "pip install 'hfevol[analysis]'" in err
    err = _fails(["analyze", "--dataset", str(single), "--out", str(tmp_path / "a5"), "--judge", "probs:http://127.0.0.1:9"], capsys)
    assert "reads a local model's probabilities" in err
    for name in ("a1", "a2", "a3", "a4", "a5"):
        assert not (tmp_path / name / "hfevol_run.json").exists()


@pytest.mark.slow
def test_compare_evolvers_with_two_real_small_models(tmp_path: Path, capsys: pytest.CaptureFixture[str], embedded) -> None:
    out = tmp_path / "cmp"
    argv = ["compare-evolvers", "--dataset", "builtin:general", "--limit", "3", "--rounds", "2", "--evolver", "embedded", "--evolver", "embedded:gemma3-270m",
            "--max-new-tokens", "64", "--responder", "embedded", "--scorer", "embedded", "--embedder", "minilm", "--judge", "probs:embedded", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    table = list(csv.DictReader((out / "evolvers.csv").open()))
    assert {t["evolver"] for t in table} == {"embedded", "gemma3-270m"}
    assert all(t["rows"] == "3" for t in table if t["round"] == "1")
    record = json.loads((out / "hfevol_run.json").read_text())
    stages = record["stages"][0]["evolvers"]
    assert "gemma" in json.dumps(stages["gemma3-270m"]["backend"]).lower()
    for name in ("evolvers.md", "evolver_difficulty.png"):
        assert (out / name).is_file()
    assert "| gemma3-270m | 1 |" in capsys.readouterr().out


def test_publish_ships_every_comparison_file() -> None:
    from hfevol.analysis.compare import COMPARISON_FILES
    from hfevol.publish.source import COMPARISON_FILES as SHIPPED

    assert SHIPPED == COMPARISON_FILES
