"""`hfevol evolve --rounds N`, `hfevol respond` and `hfevol run-recipe`: bad input, plumbing, and real runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _helpers import KeywordBackend

from hfevol.cli import main
from hfevol.cli.run_recipe import load_recipe, recipe_commands

RECIPES = Path(__file__).parent.parent / "dataset_scripts"


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err[err.index("error: ") :]


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def keyword_model(monkeypatch: pytest.MonkeyPatch):
    """The CLI's local model replaced by KeywordBackend (a stand-in for the model, not for a protocol)."""
    import hfevol.cli._options

    monkeypatch.setattr(hfevol.cli._options, "backend_from", lambda args: KeywordBackend())


# -- bad input: one clear line, nothing written ---------------------------------------------


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--rounds", "0"], "--rounds 0 must be at least 1"),
        (["--limit", "0"], "--limit 0 must be at least 1"),
        (["--map", "instruction"], "--map 'instruction' must look like FIELD=COLUMN"),
        (["--map", "instruction=question"], "column 'question' is missing"),
    ],
)
def test_bad_options(capsys, tmp_path: Path, argv, needle):
    assert main(["evolve", "--out", str(tmp_path / "o"), *argv]) == 2
    assert needle in _error(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["empty.parquet", "empty.json", "empty.jsonl", "empty.csv"])
def test_an_empty_dataset_is_refused(capsys, tmp_path: Path, name):
    from datasets import Dataset

    path = tmp_path / name
    if name.endswith(".parquet"):
        Dataset.from_dict({"instruction": [], "input": []}).to_parquet(str(path))
    else:
        path.write_text({".json": "[]", ".jsonl": "", ".csv": "instruction,input\n"}[path.suffix])
    assert main(["evolve", "--dataset", str(path), "--out", str(tmp_path / "o")]) == 2
    assert f"dataset file {str(path)!r} has no rows" in _error(capsys)
    assert not (tmp_path / "o").exists()


def test_mixed_formats_and_a_conversation_without_a_human_turn_name_the_row(capsys, tmp_path: Path):
    mixed = _jsonl(tmp_path / "mixed.jsonl", [{"instruction": "a"}, {"conversations": [{"from": "human", "value": "b"}]}])
    assert main(["evolve", "--dataset", mixed, "--out", str(tmp_path / "o")]) == 2
    assert "row 0 is in alpaca layout" in _error(capsys)
    no_human = _jsonl(tmp_path / "nohuman.jsonl", [{"conversations": [{"from": "human", "value": "b"}]}, {"conversations": [{"from": "gpt", "value": "c"}]}])
    assert main(["evolve", "--dataset", no_human, "--out", str(tmp_path / "o")]) == 2
    assert "row 1, column 'conversations': the conversation has no human turn" in _error(capsys)
    assert not (tmp_path / "o").exists()


# -- plumbing, with a stand-in model --------------------------------------------------------


def test_evolve_then_respond_skips_and_keeps_unfinished_rows(capsys, tmp_path: Path, keyword_model):
    from datasets import load_dataset

    seeds = _jsonl(
        tmp_path / "seeds.jsonl",
        [
            {"conversations": [{"from": "human", "value": t}, {"from": "gpt", "value": "seed answer"}]}
            for t in ("Describe a rainbow.", "REFUSE thunder.", "FAIL rivers.")
        ],
    )
    evolved, answered = tmp_path / "evolved", tmp_path / "answered"
    with pytest.MonkeyPatch.context() as m:  # the summaries read the rows they print, never the whole dataset
        m.setattr("datasets.Dataset.to_list", lambda self: pytest.fail("a summary read the whole dataset"))
        assert main(["evolve", "--dataset", seeds, "--rounds", "3", "--out", str(evolved)]) == 0
        printed = capsys.readouterr().out
        assert main(["respond", "--dataset", str(evolved), "--out", str(answered)]) == 0
        responded = capsys.readouterr().out
    assert "3 round(s)" in printed and "eliminated, by rule: refusal 1" in printed
    assert printed.count("), from: ") == 3 and "from: Describe a rainbow." in printed  # the three ok rows, one per round
    run = json.loads((evolved / "hfevol_run.json").read_text())
    assert [s["round"] for s in run["stages"]] == [1, 2, 3] and run["stages"][0]["elimination"]["rules"][0] == "too_short"
    assert run["rounds_written"] == 3 and run["commands"][0]["options"]["rounds"] == 3

    printed = responded
    assert printed.count("instruction: ") == 2 and "response: " in printed  # two example answers
    assert "skipped 2 row(s) whose evolution is not ok (eliminated: 1, failed: 1); they are kept, unanswered" in printed
    rows = load_dataset(str(answered), split="train").to_list()
    assert len(rows) == 5  # 3 in round 1, then the one ok row in rounds 2 and 3
    for row in rows:
        if row["evol_status"] == "ok":
            assert row["output_status"] == "ok" and row["messages"][-1] == {"role": "assistant", "content": row["output"]}
        else:
            assert row["output_status"] == "skipped" and row["output"] is None and row["messages"] is None
    run = json.loads((answered / "hfevol_run.json").read_text())
    assert [s["stage"] for s in run["stages"]] == ["evol_instruct"] * 3 + ["respond"]
    assert [c["command"] for c in run["commands"]] == ["evolve", "respond"]
    assert len(load_dataset(str(answered), data_dir="data/round_3", split="train")) == 1


def test_respond_marks_a_list_instruction_invalid_before_generating_and_writes_every_row(capsys, tmp_path: Path, monkeypatch):
    from datasets import load_dataset

    import hfevol.cli._options

    backend = KeywordBackend()
    monkeypatch.setattr(hfevol.cli._options, "backend_from", lambda args: backend)
    seeds = _jsonl(tmp_path / "seeds.jsonl", [{"instruction": "Say hi."}, {"instruction": ["Say", "hi"]}, {"instruction": "Say yes."}])
    assert main(["respond", "--dataset", seeds, "--out", str(tmp_path / "o")]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert [r.messages[-1][1].strip().splitlines()[-1] for r in backend.calls] == ["Say hi.", "Say yes."]  # the list row never reached the model
    rows = load_dataset(str(tmp_path / "o"), split="train").to_list()
    assert [r["output_status"] for r in rows] == ["ok", "invalid_input", "ok"]
    assert rows[1]["output_reason"] == "column 'instruction': the value is a list, not a string"
    assert rows[1]["output"] is None and rows[1]["messages"] is None and rows[1]["instruction"] == ["Say", "hi"]


def test_recipes_are_valid_and_expand_to_evolve_then_respond():
    for name, breadth in (("general", True), ("math", False), ("code", False)):
        recipe = load_recipe(RECIPES / f"{name}.toml")
        evolve, respond = recipe_commands(recipe, name=name, out="/tmp/x", limit=2)
        assert evolve[:1] == ["evolve"] and respond[:1] == ["respond"]
        assert evolve[evolve.index("--dataset") + 1] == f"builtin:{name}"
        assert evolve[evolve.index("--rounds") + 1] == "3" and evolve[evolve.index("--limit") + 1] == "2"
        assert ("--no-breadth" in evolve) is (not breadth)
        assert respond[respond.index("--dataset") + 1] == "/tmp/x/evolved" and respond[-1] == "/tmp/x/responded"


def test_recipe_errors(capsys, tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[evolve]\nrounds = 2\nwidth = 3\n")
    assert main(["run-recipe", str(bad)]) == 2
    assert "[evolve] has the unknown option 'width'" in _error(capsys)
    bad.write_text('[evolve]\nout = "x"\n')
    assert main(["run-recipe", str(bad)]) == 2
    assert "must not set ['out']" in _error(capsys)
    bad.write_text("colour = 1\n[evolve]\n")
    assert main(["run-recipe", str(bad)]) == 2
    assert "unknown key(s) ['colour']" in _error(capsys)
    assert main(["run-recipe", str(tmp_path / "none.toml")]) == 2
    assert "does not exist" in _error(capsys)


def test_run_recipe_dry_run_prints_the_commands(capsys):
    assert main(["run-recipe", str(RECIPES / "math.toml"), "--dry-run", "--out", "/tmp/m"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("$ hfevol evolve") and "--no-breadth" in lines[0] and lines[0].endswith("--out /tmp/m/evolved")
    assert lines[1].startswith("$ hfevol respond")


# -- the real embedded model ----------------------------------------------------------------


def _check_lineage(rows: list[dict]) -> None:
    by_id = {r["id"]: r for r in rows}
    assert len(by_id) == len(rows)
    for r in rows:
        assert r["evol_status"] in {"ok", "eliminated", "failed", "truncated", "parse_failed", "invalid_input"}
        if r["round"] > 1:
            parent = by_id[r["parent_id"]]
            assert parent["round"] == r["round"] - 1 and parent["evol_status"] == "ok"
            assert r["parent_instruction"] == parent["evolved_instruction"]
        assert (r["evol_status"] == "eliminated") == (r["elimination_rule"] is not None)
        if r["evol_status"] == "eliminated":
            assert r["evol_reason"].startswith(r["elimination_rule"] + ":")
        if r["evol_status"] == "ok":
            assert r["output_status"] in ("ok", "truncated") and r["output"]
        else:
            assert r["output_status"] == "skipped"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["general", "math", "code"])
def test_recipes_run_on_the_embedded_model(capsys, tmp_path: Path, embedded, name):
    from datasets import load_dataset

    from hfevol.cli import build_parser

    recipe = load_recipe(RECIPES / f"{name}.toml")
    recipe["model"]["device"] = "cpu"
    recipe["evolve"]["max-new-tokens"] = 40
    recipe["respond"]["max-new-tokens"] = 16
    for argv in recipe_commands(recipe, name=name, out=str(tmp_path / name), limit=2):
        args = build_parser().parse_args(argv)
        assert args.run(args) == 0
    rows = load_dataset(str(tmp_path / name / "responded"), split="train").to_list()
    assert [r["round"] for r in rows].count(1) == 2
    assert {r["category"] for r in rows} == {name}
    _check_lineage(rows)
    run = json.loads((tmp_path / name / "responded" / "hfevol_run.json").read_text())
    ops = {op for s in run["stages"] if s["stage"] == "evol_instruct" for op in s["operations"]}
    assert ("breadth" in ops) is (name == "general")


@pytest.mark.slow
def test_auto_evol_rounds_and_responses_on_the_embedded_model(capsys, tmp_path: Path, embedded):
    from datasets import load_dataset

    evolved, answered = tmp_path / "evolved", tmp_path / "answered"
    common = ["--device", "cpu", "--max-new-tokens"]
    assert main(["evolve", "--method", "auto-evol", "--rounds", "2", "--limit", "2", "--out", str(evolved), *common, "48"]) == 0
    assert "Auto Evol-Instruct" in capsys.readouterr().out
    assert main(["respond", "--dataset", str(evolved), "--out", str(answered), *common, "8"]) == 0
    rows = load_dataset(str(answered), split="train").to_list()
    _check_lineage(rows)
    assert all(isinstance(r["evol_methods"], list) for r in rows if r["evol_status"] != "invalid_input")
    assert {r["evol_operation"] for r in rows} == {"auto_evol"}


@pytest.mark.slow
def test_a_second_identical_cli_run_calls_no_model(capsys, tmp_path: Path, embedded, monkeypatch: pytest.MonkeyPatch):
    from datasets import load_dataset

    from hfevol import TransformersBackend

    argv = ["evolve", "--dataset", "builtin", "--limit", "2", "--rounds", "2", "--max-new-tokens", "16", "--device", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0

    def refuse(self, requests):
        raise AssertionError("the model was called although the datasets cache should serve this run")

    monkeypatch.setattr(TransformersBackend, "generate", refuse)
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    a = load_dataset(str(tmp_path / "a"), split="train").to_list()
    b = load_dataset(str(tmp_path / "b"), split="train").to_list()
    assert a == b
    # while a changed sampling parameter does reach the model
    changed = [a if a != "16" else "17" for a in argv]
    with pytest.raises(AssertionError, match="datasets cache should serve"):
        main([*changed, "--out", str(tmp_path / "c")])


@pytest.mark.slow
def test_same_config_seed_and_model_give_the_same_rows(embedded):
    from datasets import Dataset

    from hfevol import EvolInstruct, SamplingParams, TransformersBackend, builtin_sample, evolve_rounds

    rows = builtin_sample().select([0, 25]).to_list()

    def run(seed: int) -> list[dict]:
        evolver = EvolInstruct(backend=TransformersBackend(device="cpu"), sampling=SamplingParams(max_new_tokens=20), seed=seed)
        return evolve_rounds(Dataset.from_list(rows), evolver, 2, elimination=None).to_list()  # in memory: no cache

    first, second, other = run(0), run(0), run(1)
    assert first == second
    assert [r["evolved_instruction"] for r in first] != [r["evolved_instruction"] for r in other]
