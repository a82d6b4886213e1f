"""The run record: its schema, old records, the chain of stages through every command, and publish's file check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _helpers import KeywordBackend

from hfevol.cli import main
from hfevol.errors import NotHfevolOutputError
from hfevol.record import RunRecord, StageRecord, rows_digest, safe_options


@pytest.fixture
def keyword_model(monkeypatch: pytest.MonkeyPatch):
    """The CLI's generation model replaced by KeywordBackend (a stand-in for the model, not for a protocol)."""
    import hfevol.cli._options

    monkeypatch.setattr(hfevol.cli._options, "backend_from", lambda args: KeywordBackend())


def _strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_a_record_round_trips_and_old_records_still_read(tmp_path: Path):
    stage = StageRecord(stage="score", settings={"mode": "reference"}, counts={"ok": 3})
    record = RunRecord(stages=(stage,), extras={"summary": {"rows": 3}})
    back = RunRecord.from_json(json.loads(json.dumps(record.to_json())))
    assert back == record and back.schema_version >= 1
    # a version-0 record, as hfevol score wrote it: the model under "model", the seed under "source"
    old = {"hfevol_version": "0.1.0", "source": "builtin", "rows": 2, "summary": {"rows": 2},
           "stages": [{"stage": "score", "model": {"model": "org/scorer", "revision": "abc"}, "mode": "reference"}]}  # fmt: skip
    read = RunRecord.from_json(old)
    assert read.schema_version == 0 and read.seed_data is not None and read.seed_data.name == "builtin"
    assert (read.stages[0].backend.model, read.stages[0].backend.revision, read.stages[0].settings) == ("org/scorer", "abc", {"mode": "reference"})
    assert read.extras == {"summary": {"rows": 2}}
    with pytest.raises(ValueError, match="must not be named"):
        StageRecord(stage="x", settings={"seed": 1})


def test_header_values_and_absolute_paths_never_reach_the_options():
    kept = safe_options({"header": ["X-Auth-Token: s3cret-value", "X-Trace:1"], "dataset": "/abs/seeds.jsonl", "rounds": 2, "run": print})
    assert kept["header"] == ["X-Auth-Token", "X-Trace"] and "s3cret" not in json.dumps(kept)
    assert not kept["dataset"].startswith("/") and kept["dataset"].endswith("abs/seeds.jsonl") and kept["rounds"] == 2 and "run" not in kept


def test_rows_digest_follows_the_content_not_the_chunking():
    from datasets import Dataset, concatenate_datasets

    rows = [{"a": i, "b": f"t{i}"} for i in range(5)]
    whole = Dataset.from_list(rows)
    pieces = concatenate_datasets([Dataset.from_list(rows[:2]), Dataset.from_list(rows[2:])])
    assert rows_digest(whole) == rows_digest(pieces) != rows_digest(Dataset.from_list(rows[:4]))


def test_evolve_respond_score_select_publish_chains_every_stage(tmp_path: Path, monkeypatch, keyword_model, tiny_lm_dir, capsys):
    monkeypatch.chdir(tmp_path)
    seeds = Path("seeds.jsonl")
    seeds.write_text(
        "".join(
            json.dumps({"instruction": t, "output": "seed answer"}) + "\n" for t in ("Describe a rainbow.", "Explain tides.", "REFUSE thunder.", "Name rivers.")
        )
    )
    assert main(["evolve", "--dataset", str(seeds), "--rounds", "2", "--out", "evolved", "--header", "X-Trace: secret-trace-value"]) == 0
    assert main(["respond", "--dataset", "evolved", "--out", "responded"]) == 0
    assert main(["score", "--dataset", "responded", "--out", "scored", "--model", tiny_lm_dir, "--device", "cpu", "--batch-size", "2"]) == 0
    assert main(["select", "--dataset", "scored", "--top", "50%", "--out", "top"]) == 0
    text = Path("top/hfevol_run.json").read_text()
    record = json.loads(text)
    assert [s["stage"] for s in record["stages"]] == ["evol_instruct", "evol_instruct", "respond", "score", "select"]
    assert [c["command"] for c in record["commands"]] == ["evolve", "respond", "score", "select"]
    assert [s["backend"]["model"] for s in record["stages"]] == ["keyword-1", "keyword-1", "keyword-1", Path(tiny_lm_dir).name, None]
    assert record["stages"][0]["input"]["rows"] == 4 and record["stages"][2]["counts"]["ok"] >= 1 and record["stages"][3]["counts"]
    assert record["seed_data"]["name"] == "seeds.jsonl" and record["seed_data"]["rows"] == 4
    assert "secret-trace-value" not in text and record["commands"][0]["options"]["header_names"] == ["X-Trace"]
    assert not [s for s in _strings(record) if s.startswith("/")]  # no absolute local path
    assert (Path("top") / record["seed_data"]["path"]).resolve() == seeds.resolve()  # stored relative to the folder

    capsys.readouterr()
    assert main(["publish", "top", "--version", "v1", "--local-dir", "release"]) == 0
    card = Path("release/README.md").read_text()
    table = card[card.index("| # | stage | model") :].split("\n\n")[0]
    for n, (stage, model) in enumerate(
        [("evol_instruct", "keyword-1"), ("evol_instruct", "keyword-1"), ("respond", "keyword-1"), ("score", Path(tiny_lm_dir).name), ("select", None)], 1
    ):
        line = next(x for x in table.splitlines() if x.startswith(f"| {n} | {stage} |"))
        assert (f"`{model}`" in line) if model else ("| - |" in line), line
    assert "from the seed data `seeds.jsonl`" in card
    assert json.loads(Path("release/hfevol_run.json").read_text())["stages"] == record["stages"]


def test_the_card_defaults_to_the_round_with_kept_rows_and_shows_kept_examples_first(tmp_path: Path, monkeypatch, keyword_model):
    monkeypatch.chdir(tmp_path)
    Path("seeds.jsonl").write_text("".join(json.dumps({"instruction": t}) + "\n" for t in ("REFUSE a.", "REFUSE b.", "Describe c.", "REFUSE d.")))
    assert main(["evolve", "--dataset", "builtin", "--limit", "3", "--rounds", "2", "--out", "evolved"]) == 0
    assert main(["respond", "--dataset", "evolved", "--out", "responded"]) == 0
    from hfevol.publish.card import CardOptions, build_view
    from hfevol.publish.source import read_source

    source = read_source("responded")
    kept = {c: source.kept_rows(c) for c in source.configs}
    view = build_view(source, CardOptions(), repo_id=None, version="v1", earlier=[])
    assert view.default_config == max(kept, key=lambda c: (kept[c], c)) and "most kept rows" in view.default_reason
    assert view.examples and view.examples[0]["status"] == "ok" and view.examples[0]["response"] not in (None, "-")
    assert source.run.seed_data is not None and source.run.seed_data.name == "builtin"


def test_publish_refuses_data_files_that_differ_from_the_record(tmp_path: Path, keyword_model):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hfevol.publish.source import read_source

    out = tmp_path / "evolved"
    assert main(["evolve", "--dataset", "builtin", "--limit", "2", "--out", str(out)]) == 0
    read_source(out)  # as written: accepted
    data = out / "data" / "round_1" / "train.parquet"
    table = pq.read_table(data)
    pq.write_table(table.slice(0, 1), data)  # another run's rows, as a half-finished write would leave them
    with pytest.raises(NotHfevolOutputError, match=r"data file data/round_1/train.parquet .* does not match its hfevol_run.json") as info:
        read_source(out)
    assert "hfevol evolve" in info.value.hint
    pq.write_table(table, data)
    pq.write_table(pa.table({"x": [1]}), out / "data" / "round_1" / "extra.parquet")
    with pytest.raises(NotHfevolOutputError, match="extra.parquet .* is not listed"):
        read_source(out)


def test_retry_failed_finds_the_seeds_from_another_directory_and_refuses_edited_ones(tmp_path: Path, monkeypatch, capsys):
    import hfevol.cli._options

    model = KeywordBackend()
    monkeypatch.setattr(hfevol.cli._options, "backend_from", lambda args: model)
    run_dir, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    run_dir.mkdir(), elsewhere.mkdir()
    original = "".join(json.dumps({"instruction": t}) + "\n" for t in ("FAIL the rivers.", "Describe a rainbow.", "Explain tides."))
    (run_dir / "seeds.jsonl").write_text(original)
    monkeypatch.chdir(run_dir)
    assert main(["evolve", "--dataset", "seeds.jsonl", "--out", "out", "--header", "X-Trace: t-123"]) == 0
    sent = len(model.calls)
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()

    assert main(["retry-failed", "../project/out"]) == 2  # the header's value was never recorded
    assert "X-Trace" in capsys.readouterr().err and len(model.calls) == sent
    assert main(["retry-failed", "../project/out", "--header", "X-Trace: t-123"]) == 0  # the seeds are found relative to the output folder
    assert "retry-failed: 1 failed row(s) before, 1 now" in capsys.readouterr().out
    assert len(model.calls) == sent + 1  # only the failed row reached the model

    (run_dir / "seeds.jsonl").write_text(original.replace("tides", "storms"))
    calls = len(model.calls)
    assert main(["retry-failed", "../project/out", "--header", "X-Trace: t-123"]) == 2
    err = capsys.readouterr().err
    assert "is not the input that `hfevol evolve` read" in err and "--dataset" in err and "Traceback" not in err
    assert len(model.calls) == calls  # refused before anything ran

    (elsewhere / "kept.jsonl").write_text(original)
    assert main(["retry-failed", "../project/out", "--header", "X-Trace: t-123", "--dataset", "kept.jsonl"]) == 0
    assert "1 failed row(s) before" in capsys.readouterr().out
    (elsewhere / "kept.jsonl").unlink()
    (run_dir / "seeds.jsonl").unlink()
    assert main(["retry-failed", "../project/out", "--header", "X-Trace: t-123"]) == 2
    assert "is not at" in capsys.readouterr().err


@pytest.mark.slow
def test_the_chain_on_the_embedded_model_names_every_stage_and_its_model(tmp_path: Path, monkeypatch, embedded):
    monkeypatch.chdir(tmp_path)
    assert (
        main(["evolve", "--dataset", "builtin:general", "--limit", "2", "--out", "evolved", "--no-elimination", "--max-new-tokens", "160", "--device", "cpu"])
        == 0
    )
    assert main(["respond", "--dataset", "evolved", "--out", "responded", "--max-new-tokens", "32", "--device", "cpu"]) == 0
    assert main(["score", "--dataset", "responded", "--out", "scored", "--device", "cpu"]) == 0
    # tokens_a is defined on every row (a tiny run may leave IC-IFD undefined everywhere), so select keeps rows
    assert main(["select", "--dataset", "scored", "--by", "tokens_a", "--top", "100%", "--out", "top"]) == 0
    assert main(["publish", "top", "--version", "v1", "--local-dir", "release"]) == 0
    record = json.loads(Path("release/hfevol_run.json").read_text())
    model = "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert [(s["stage"], s["backend"]["model"]) for s in record["stages"]] == [("evol_instruct", model), ("respond", model), ("score", model), ("select", None)]
    card = Path("release/README.md").read_text()
    for n, stage in enumerate(["evol_instruct", "respond", "score"], 1):
        assert any(line.startswith(f"| {n} | {stage} | `{model}`") for line in card.splitlines()), stage
    assert "hfevol built-in seed sample" in card


def test_a_served_model_named_by_its_local_path_is_recorded_by_its_folder_name():
    """vLLM reports the --model it was started with, often an absolute local path; a record never holds one."""
    from hfevol.record import BackendInfo

    where = "/home/someone/models/smollm2-135m"
    served = {"kind": "openai", "urls": ["http://127.0.0.1:8000"], "model": where, "details": {"server": {"root": where, "max_model_len": 1024}}}
    info = BackendInfo.from_description(served, served_model=where).to_json()
    assert "/home/someone" not in json.dumps(info)
    assert info["served_model"] == "smollm2-135m" and info["details"]["server"] == {"root": "smollm2-135m", "max_model_len": 1024}
