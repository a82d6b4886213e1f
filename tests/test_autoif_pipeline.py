"""``hfevol autoif`` end to end through the TGI test server, with a scripted model that writes good and bad verifiers.

The functions run in the real sandbox (:mod:`hfevol.sandbox`). Every expected count is
worked out by hand from the script below.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from hfevol.cli import main
from hfevol.testing import EchoEngine, TGITestServer
from hfevol.testing.engines import Generation

pytestmark = pytest.mark.integration

SEEDS = 'Write the whole answer in lowercase letters only.\nInclude the word "banana" in your answer.\n'
QUERIES = [
    "Tell me about banana smoothies please.",
    "Why do monkeys like a banana so much?",
    "What is a good breakfast for a busy day?",
    "How do I water a cactus in winter?",
]

CONSTRAINT_REPLY = """Sure! Here are some new instructions:

1. Write the whole answer in lowercase letters only
2. End your answer with the word "done".
"""

LOWER_A = '```json\n{"func": "def evaluate(response):\\n    return response == response.lower()", "cases": [{"input": "all lower here", "output": true}, {"input": "Not Lower", "output": false}]}\n```'
LOWER_B = "{'func': 'def evaluate(response):\\n    return not any(c.isupper() for c in response)', 'cases': [{'input': 'fine text', 'output': True}, {'input': 'BAD', 'output': False}]}"
ALWAYS = '{"func": "def evaluate(response):\\n    return True", "cases": [{"input": "Hello", "output": "true"}]}'
NO_JSON = "I would check whether the text is lowercase."
LOOP = '{"func": "def evaluate(response):\\n    while True:\\n        pass", "cases": []}'
BROKEN = '{"func": "def evaluate(response) return True", "cases": [{"input": "no fruit", "output": false}]}'
BANANA = '{"func": "def evaluate(response):\\n    return \\"banana\\" in response.lower()", "cases": [{"input": "I like banana bread", "output": true}, {"input": "apples only", "output": false}]}'
VERIFIERS = {
    "lowercase": [LOWER_A, LOWER_B, ALWAYS, NO_JSON],
    "banana": [LOOP, BROKEN, BANANA, BANANA],
    "done": ["[1, 2]", '{"cases": []}', NO_JSON, "[3]"],
}


class AutoIFEngine(EchoEngine):
    """A scripted model: constraint lists, verifiers per constraint (each reply used once, in turn), answers that
    pass when the query mentions a banana, and judge replies."""

    model_id = "hfevol/autoif-script"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[str, int] = {}

    def generate(self, prompt, *, max_new_tokens, temperature, top_p, seed, stop, top_n):
        text = self.reply(prompt)
        return Generation(text, [(1, w, -0.5) for w in text.split()], None, "eos_token", len(prompt.split()))

    def reply(self, prompt: str) -> str:
        if "new instructions that differ from the examples" in prompt:
            return CONSTRAINT_REPLY
        if "Write a function `evaluate(response)`" in prompt:
            line = re.search(r"Instruction: (.*)", prompt).group(1)
            kind = "lowercase" if "lowercase" in line else "banana" if "banana" in line else "done"
            with self._lock:
                k = self._next.get(kind, 0)
                self._next[kind] = k + 1
            return VERIFIERS[kind][k % 4]
        if "You are judging" in prompt:
            return "It answers the request.\nScore: 9/10" if "banana" in prompt.split("Response:")[-1] else "Off topic.\nScore: 3"
        if "Answer the instruction below" in prompt:
            return "i like banana bread, it is tasty" if "banana" in prompt.split("Input:")[-1] else "Plain Answer Here."
        return "?"


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, str]:
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(SEEDS)
    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(json.dumps({"instruction": q}) + "\n" for q in QUERIES))
    return {"seeds": str(seeds), "queries": str(queries)}


def _argv(url: str, out: Path, inputs: dict[str, str], *extra: str) -> list[str]:
    return ["autoif", "--out", str(out), "--endpoint", url, "--seed-constraints", inputs["seeds"], "--queries", inputs["queries"],
            "--constraint-samples", "1", "--functions-per-constraint", "4", "--queries-per-constraint", "4",
            "--per-input-timeout", "0.3", "--max-attempts", "2", *extra]  # fmt: skip


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_ea_end_to_end_with_good_and_bad_verifiers(tmp_path: Path, inputs, capsys):
    from datasets import load_dataset

    out = tmp_path / "out"
    with TGITestServer(AutoIFEngine()) as srv:
        assert main(_argv(srv.url, out, inputs)) == 0
    printed = capsys.readouterr().out
    constraints = {c["constraint_id"]: c for c in _jsonl(out / "_autoif" / "constraints.jsonl")}
    # two seeds, then the reply's two lines: a copy of the first seed and a new one; the preamble is dropped
    assert [(c["origin"], c["constraint_status"]) for c in constraints.values()] == [
        ("seed", "ok"),
        ("seed", "ok"),
        ("generated", "duplicate"),
        ("generated", "ok"),
    ]
    assert constraints["c0002"]["crossval_status"] == "not_checked"
    # lowercase: LOWER_A and LOWER_B are right on 4 of the 5 pooled cases (0.8), ALWAYS on 3 (0.6): two kept
    low = constraints["c0000"]
    assert low["crossval_status"] == "kept" and len(low["verifiers_kept"]) == 2 and low["cases_candidates"] == 5 and len(low["cases_kept"]) == 5
    # banana: the loop times out (every verdict None), the broken one does not compile, one is a duplicate: one kept
    ban = constraints["c0001"]
    assert ban["crossval_status"] == "kept" and len(ban["verifiers_kept"]) == 1 and ban["cases_candidates"] == 3
    # "done": no reply holds a function
    assert constraints["c0003"]["crossval_status"] == "dropped"
    assert constraints["c0003"]["crossval_reason"] == "0 usable function(s) and 0 test case(s); at least 1 and 1 are needed"
    verifiers = _jsonl(out / "_autoif" / "verifiers.jsonl")
    by_status = {}
    for v in verifiers:
        by_status.setdefault(v["constraint_id"], []).append(v["crossval_status"])
    assert sorted(by_status["c0000"]) == ["dropped", "kept", "kept", "no_function"]
    assert sorted(by_status["c0001"]) == ["dropped", "duplicate", "kept", "not_run"]
    assert sorted(by_status["c0003"]) == ["no_function"] * 4
    loop = next(v for v in verifiers if v["verifier_func"] and "while True" in v["verifier_func"])
    assert loop["run_status"] in ("ok", "killed_timeout") and loop["accuracy"] == 0.0
    assert next(v for v in verifiers if v["verifier_func"] and ") return" in v["verifier_func"])["run_status"] == "compile_error"
    # answers: 2 kept constraints x 4 queries; the two banana queries pass every function, the others none
    rows = load_dataset(str(out), split="train").to_list()
    assert len(rows) == 8 and all(r["autoif_status"] == "ok" for r in rows)  # ea filters nothing
    for r in rows:
        assert r["pass_rate"] == (1.0 if "banana" in r["query"] else 0.0)
        assert len(r["verifier_results"]) == len(r["verifier_ids"]) == len(constraints[r["constraint_id"]]["verifiers_kept"])
        assert r["instruction"] == r["constraint"] and r["input"] == r["query"]
        assert r["messages"][0]["content"] == f"{r['constraint']}\n\n{r['query']}"
    record = json.loads((out / "hfevol_run.json").read_text())
    summary = record["autoif"]
    assert record["sandbox"] == summary["sandbox"] and summary["sandbox"] in ("process", "seccomp", "bwrap", "bwrap+seccomp")
    assert summary["constraints"]["kept"] == 2 and summary["functions"]["kept"] == 3
    assert summary["functions_per_constraint"] == {"c0000": 2, "c0001": 1, "c0003": 0}
    assert summary["answers"]["pass_rate_histogram"]["counts"] == [4, 0, 0, 0, 0, 0, 0, 0, 0, 4]
    assert [s["stage"] for s in record["stages"]] == ["autoif_constraints", "autoif_verifiers", "autoif_crossval", "respond", "autoif_verify"]
    assert "3 cross-val    3 constraints checked, 2 kept; functions kept 3" in printed
    assert f"sandbox {summary['sandbox']}" in printed
    assert not (tmp_path / "out-dpo").exists()
    # the output publishes like any other, and the tables stay out of the release
    assert main(["publish", str(out), "--version", "v1", "--local-dir", str(tmp_path / "release")]) == 0
    released = {p.relative_to(tmp_path / "release").as_posix() for p in (tmp_path / "release").rglob("*") if p.is_file() and ".git" not in p.parts}
    assert "README.md" in released and "hfevol_run.json" in released and not any("_autoif" in p for p in released)


def test_autoif_preset_filters_answers_judges_and_makes_dpo_pairs(tmp_path: Path, inputs, capsys):
    from datasets import load_dataset

    out = tmp_path / "out"
    with TGITestServer(AutoIFEngine()) as srv:
        # the paper's rules, with the minimums lowered to this small script's size
        argv = _argv(srv.url, out, inputs, "--preset", "autoif", "--min-functions", "1", "--min-cases", "2", "--responses-per-query", "2", "--judge", srv.url)
        assert main(argv) == 0
    rows = load_dataset(str(out), split="train").to_list()
    constraints = {c["constraint_id"]: c for c in _jsonl(out / "_autoif" / "constraints.jsonl")}
    # lowercase under > 0.5: the "Hello" case (1 of 3 agree) goes; LOWER_A/B score 1.0, ALWAYS 2/4 = 0.5 is not > 0.5
    assert len(constraints["c0000"]["cases_kept"]) == 4 and len(constraints["c0000"]["verifiers_kept"]) == 2
    # banana: the loop and the good function disagree on both cases: agreement 1/2, not > 0.5: dropped
    assert constraints["c0001"]["crossval_status"] == "dropped"
    assert len(rows) == 4 * 2
    for r in rows:
        if "banana" in r["query"]:
            assert (r["pass_rate"], r["judge_score"], r["autoif_status"]) == (1.0, 9.0, "ok")
        else:
            assert (r["pass_rate"], r["autoif_status"]) == (0.0, "below_pass_rate")
    # the scripted answers do not vary with the seed, so no query has both a passing and a failing answer
    assert json.loads((out / "hfevol_run.json").read_text())["autoif"]["dpo_pairs"] == 0
    assert "6 DPO pairs    0 (no answer passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--responses-per-query", "0"], "--responses-per-query 0 must be at least 1"),
        (["--min-pass-rate", "1.5"], "--min-pass-rate 1.5 must be between 0 and 1"),
        (["--function-accuracy", "-0.1"], "--function-accuracy -0.1 must be between 0 and 1"),
        (["--case-agreement", "2"], "--case-agreement 2.0 must be between 0 and 1"),
    ],
)
def test_bad_options_fail_before_any_model_call(tmp_path: Path, inputs, capsys, extra, needle):
    with TGITestServer(AutoIFEngine()) as srv:
        assert main(_argv(srv.url, tmp_path / "o", inputs, *extra)) == 2
        assert srv.generations(status=None) == []
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert not (tmp_path / "o").exists()


def test_bad_inputs_fail_before_any_model_call(tmp_path: Path, inputs, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n")
    no_instruction = tmp_path / "q.jsonl"
    no_instruction.write_text(json.dumps({"question": "What is a good way to learn to swim?"}) + "\n")
    with TGITestServer(AutoIFEngine()) as srv:
        assert main(_argv(srv.url, tmp_path / "a", {**inputs, "seeds": str(empty)})) == 2
        assert "holds no constraint" in capsys.readouterr().err
        assert main(_argv(srv.url, tmp_path / "b", {**inputs, "queries": str(no_instruction)})) == 2
        assert "column 'instruction' is missing" in capsys.readouterr().err
        assert srv.generations(status=None) == []
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_required_sandbox_level_that_is_missing_fails_before_any_model_call(tmp_path: Path, inputs, capsys, monkeypatch):
    import hfevol.sandbox.probe as probe

    monkeypatch.setattr(probe, "layers", lambda: probe.Layers(bwrap=False, seccomp=False, detail="no bwrap in this test"))
    with TGITestServer(AutoIFEngine()) as srv:
        assert main(_argv(srv.url, tmp_path / "o", inputs, "--require-sandbox", "bwrap+seccomp")) == 2
        assert srv.generations(status=None) == []
    err = capsys.readouterr().err
    assert "needs 'bwrap+seccomp'" in err and "Traceback" not in err


class AlternatingEngine(AutoIFEngine):
    """Answers each prompt first with a passing text, then with a failing one: every query gets one of each."""

    def reply(self, prompt: str) -> str:
        if "Answer the instruction below" not in prompt:
            return super().reply(prompt)
        with self._lock:
            k = self._next.get(prompt, 0)
            self._next[prompt] = k + 1
        return "i like banana bread, it is tasty" if k % 2 == 0 else "Plain Answer Here."


def test_sampled_answers_give_dpo_pairs_in_trl_layout(tmp_path: Path, inputs, capsys):
    from datasets import load_dataset

    out = tmp_path / "out"
    with TGITestServer(AlternatingEngine()) as srv:
        assert main(_argv(srv.url, out, inputs, "--responses-per-query", "2")) == 0
    rows = {r["id"]: r for r in load_dataset(str(out), split="train").to_list()}
    pairs = load_dataset(str(tmp_path / "out-dpo"), split="train").to_list()
    # 2 kept constraints x 4 queries, each with one passing and one failing answer: 8 pairs
    assert len(pairs) == 8 and len({p["pair_id"] for p in pairs}) == 8
    for p in pairs:
        chosen, rejected = rows[p["chosen_id"]], rows[p["rejected_id"]]
        assert chosen["pass_rate"] == 1.0 and rejected["pass_rate"] == 0.0 and chosen["pair_id"] == rejected["pair_id"] == p["pair_id"]
        assert p["prompt"] == [{"role": "user", "content": f"{chosen['constraint']}\n\n{chosen['query']}"}]
        assert p["chosen"] == [{"role": "assistant", "content": "i like banana bread, it is tasty"}]
        assert p["rejected"] == [{"role": "assistant", "content": "Plain Answer Here."}]
    assert json.loads((tmp_path / "out-dpo" / "hfevol_run.json").read_text())["rows"] == 8
    assert "6 DPO pairs    8 in" in capsys.readouterr().out


def test_a_run_where_no_verifier_works_writes_an_empty_output_with_reasons(tmp_path: Path, inputs, capsys):
    seeds = tmp_path / "done.txt"
    seeds.write_text('End your answer with the word "done".\n')
    out = tmp_path / "out"
    with TGITestServer(AutoIFEngine()) as srv:
        assert main(_argv(srv.url, out, {**inputs, "seeds": str(seeds)}, "--constraint-samples", "0", "--judge", srv.url)) == 0
    import pyarrow.parquet as pq

    table = pq.read_table(out / "data" / "train.parquet")  # load_dataset builds no split from an empty file
    assert table.num_rows == 0 and {"pass_rate", "autoif_status", "messages", "judge_score"} <= set(table.column_names)
    (only,) = _jsonl(out / "_autoif" / "constraints.jsonl")
    assert only["crossval_status"] == "dropped" and only["crossval_reason"].startswith("0 usable function(s)")
    assert "0 kept" in capsys.readouterr().out


@pytest.mark.slow
def test_the_embedded_model_end_to_end(tmp_path: Path, inputs, embedded, capsys):
    """The real small model rarely writes a working verifier; the run still finishes and every row says what happened."""
    out = tmp_path / "out"
    argv = ["autoif", "--out", str(out), "--seed-constraints", inputs["seeds"], "--queries", inputs["queries"], "--constraint-samples", "1",
            "--constraints-per-reply", "3", "--max-constraints", "1", "--functions-per-constraint", "2", "--queries-per-constraint", "1",
            "--max-new-tokens", "48", "--per-input-timeout", "0.5"]  # fmt: skip
    assert main(argv) == 0
    constraints = _jsonl(out / "_autoif" / "constraints.jsonl")
    verifiers = _jsonl(out / "_autoif" / "verifiers.jsonl")
    assert [c["constraint_status"] for c in constraints][:2] == ["ok", "not_used"]
    assert all(c["constraint_status"] in ("ok", "duplicate", "not_used") for c in constraints)
    assert all(c["crossval_status"] in ("kept", "dropped", "not_checked") and (c["crossval_status"] == "kept" or c["crossval_reason"]) for c in constraints)
    assert len(verifiers) == 2 and all(v["crossval_status"] and (v["kept"] or v["crossval_reason"]) for v in verifiers)
    record = json.loads((out / "hfevol_run.json").read_text())
    assert record["sandbox"] and record["autoif"]["constraints"]["checked"] == 1
    assert "== AutoIF (ea)" in capsys.readouterr().out
