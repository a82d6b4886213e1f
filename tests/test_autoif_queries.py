"""AutoIF queries: the project's file, any to_alpaca dataset, seeded per-constraint sampling, placement, DPO pairs."""

from __future__ import annotations

import json
import random

import pytest

from hfevol.autoif import dpo_pairs, load_queries, pair_rows, place, sample_queries
from hfevol.errors import EmptyDatasetError, MissingColumnError
from hfevol.seeding import row_seed


def test_the_project_query_file():
    queries, counts = load_queries()
    assert 100 <= len(queries) <= 200 and counts["read"] == len(queries)
    assert all(20 <= len(q) <= 300 for q in queries) and len(set(queries)) == len(queries)


def test_any_layout_and_the_length_filter(tmp_path):
    path = tmp_path / "chats.jsonl"
    rows = [
        {"conversations": [{"from": "human", "value": "Tell me a fact about owls and their hunting."}, {"from": "gpt", "value": "..."}]},
        {"conversations": [{"from": "human", "value": "Hi"}]},  # too short
        {"conversations": [{"from": "human", "value": "Tell me a fact about owls and their hunting."}]},  # duplicate
        {"conversations": [{"from": "human", "value": "x" * 301}]},  # too long
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    queries, counts = load_queries(str(path))
    assert queries == ["Tell me a fact about owls and their hunting."]
    assert counts == {"read": 4, "length": 2, "duplicate": 1, "empty": 0}
    alpaca = tmp_path / "a.jsonl"
    alpaca.write_text(json.dumps({"instruction": "Summarise this paragraph for me", "input": "Owls hunt at night."}) + "\n")
    assert load_queries(str(alpaca))[0] == ["Summarise this paragraph for me\n\nOwls hunt at night."]


def test_a_dataset_without_an_instruction_column_or_usable_query(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "What is a good way to learn to swim?"}) + "\n")
    with pytest.raises(MissingColumnError, match="column 'instruction' is missing"):
        load_queries(str(path))
    assert load_queries(str(path), mapping={"instruction": "question"})[0] == ["What is a good way to learn to swim?"]
    path.write_text(json.dumps({"instruction": "short"}) + "\n")
    with pytest.raises(EmptyDatasetError, match="no query of 20 to 300 characters"):
        load_queries(str(path))


def test_sampling_is_seeded_per_constraint_without_replacement():
    a = sample_queries(120, 16, 0, "c0003")
    assert a == sample_queries(120, 16, 0, "c0003")  # the same inputs, the same choice
    assert len(set(a)) == 16 and all(0 <= q < 120 for q in a)
    # independently: the documented derivation, random.Random seeded by row_seed, sampling without replacement
    assert a == random.Random(row_seed(0, "autoif_queries", "c0003")).sample(range(120), 16)
    assert a != sample_queries(120, 16, 1, "c0003") and a != sample_queries(120, 16, 0, "c0004")
    state = random.getstate()
    random.seed(12345)
    assert sample_queries(120, 16, 0, "c0003") == a  # global random state plays no part
    random.setstate(state)
    assert sorted(sample_queries(5, 16, 0, "c0")) == [0, 1, 2, 3, 4]  # fewer queries than asked: all, shuffled


def test_placement_and_pair_rows():
    assert place("Answer in lowercase.", "What is tea?", "split") == ("Answer in lowercase.", "What is tea?")
    assert place("Answer in lowercase.", "What is tea?", "joined") == ("What is tea? Answer in lowercase.", "")
    assert place("answer in lowercase", "Tell me about tea", "joined") == ("Tell me about tea. answer in lowercase", "")
    rows = pair_rows([{"constraint_id": "c0", "constraint": "Be brief."}], ["q one", "q two", "q three"], per_constraint=2, responses_per_query=2, seed=0)
    picked = sample_queries(3, 2, 0, "c0")
    assert [r["id"] for r in rows] == [f"c0-q{q}-r{r}" for q in picked for r in (0, 1)]
    assert {r["pair_id"] for r in rows} == {f"c0-q{q}" for q in picked}
    assert rows[0]["instruction"] == "Be brief." and rows[0]["input"] == rows[0]["query"]


def _row(pair: str, k: int, rate, status="ok", autoif="ok"):
    return {"id": f"{pair}-r{k}", "pair_id": pair, "constraint_id": pair.split("-")[0], "response_index": k, "instruction": "Be brief.",
            "input": "What is tea?", "output": f"answer {pair} {k}", "output_status": status, "pass_rate": rate, "autoif_status": autoif}  # fmt: skip


def test_dpo_pairs_match_passing_all_with_passing_none():
    rows = [
        _row("c0-q1", 0, 1.0), _row("c0-q1", 1, 0.0), _row("c0-q1", 2, 1.0), _row("c0-q1", 3, 0.5),  # one pair: r0 vs r1 (r2 has no partner)
        _row("c0-q2", 0, 0.0), _row("c0-q2", 1, 0.0),  # nothing chosen
        _row("c1-q0", 0, 1.0, autoif="below_judge_score"), _row("c1-q0", 1, 0.0),  # the judge filtered the only passing answer
        _row("c1-q1", 0, 1.0), _row("c1-q1", 1, None, status="failed"), _row("c1-q1", 2, 0.0),  # r1 failed; r0 vs r2
    ]  # fmt: skip
    pairs = dpo_pairs(rows)
    assert [(p["chosen_id"], p["rejected_id"]) for p in pairs] == [("c0-q1-r0", "c0-q1-r1"), ("c1-q1-r0", "c1-q1-r2")]
    assert pairs[0]["prompt"] == [{"role": "user", "content": "Be brief.\n\nWhat is tea?"}]
    assert pairs[0]["chosen"] == [{"role": "assistant", "content": "answer c0-q1 0"}]
    assert pairs[0]["rejected"] == [{"role": "assistant", "content": "answer c0-q1 1"}]
