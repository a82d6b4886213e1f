"""Several rounds with lineage, elimination between rounds, and the per-round output layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _helpers import KeywordBackend, ScriptedBackend
from datasets import Dataset, load_dataset

from hfevol import AutoEvolInstruct, Elimination, EvolInstruct, evolve_rounds, split_rounds
from hfevol.errors import ConfigError, DataError, EmptyDatasetError, InvalidRowError, MissingColumnError
from hfevol.evolution import ALL_OPERATIONS, DEPTH_OPERATIONS, operation_for
from hfevol.evolution.rounds import round_report
from hfevol.io import write_output

SEEDS = [
    {"id": "s0", "instruction": "Describe a rainbow.", "input": "", "output": "Seed answer 0"},
    {"id": "s1", "instruction": "REFUSE to describe thunder.", "input": "", "output": "Seed answer 1"},
    {"id": "s2", "instruction": "List three fruits.", "input": "apples", "output": "Seed answer 2"},
    {"id": "s3", "instruction": "FAIL at naming a river.", "input": "", "output": "Seed answer 3"},
    {"id": "s4", "instruction": "LONG essay on tides.", "input": "", "output": "Seed answer 4"},
]


def _run(rounds=3, seeds=SEEDS, **kwargs):
    backend = KeywordBackend()
    out = evolve_rounds(Dataset.from_list(seeds), EvolInstruct(backend=backend), rounds, **kwargs)
    return out, backend


def test_each_round_evolves_only_the_previous_rounds_ok_rows():
    out, backend = _run(3)
    by_round = {r: [row for row in out if row["round"] == r] for r in (1, 2, 3)}
    assert [len(by_round[r]) for r in (1, 2, 3)] == [5, 2, 2]
    assert {r["id"]: r["evol_status"] for r in by_round[1]} == {"s0-r1": "ok", "s1-r1": "eliminated", "s2-r1": "ok", "s3-r1": "failed", "s4-r1": "truncated"}
    assert [r["id"] for r in by_round[3]] == ["s0-r3", "s2-r3"]
    # 5 requests in round 1, then 2 and 2
    assert len(backend.calls) == 9


def test_lineage_ids_parents_and_roots():
    out, _ = _run(3)
    rows = {r["id"]: r for r in out}
    assert rows["s0-r1"]["parent_id"] == "s0" and rows["s0-r2"]["parent_id"] == "s0-r1" and rows["s0-r3"]["parent_id"] == "s0-r2"
    for row in rows.values():
        assert row["root_id"] == row["id"].split("-r")[0]
        assert row["root_instruction"] == SEEDS[int(row["root_id"][1])]["instruction"]
    # each round's parent text is the previous round's evolved text
    assert rows["s0-r2"]["parent_instruction"] == rows["s0-r1"]["evolved_instruction"] == rows["s0-r1"]["instruction"]
    assert rows["s2-r3"]["parent_instruction"] == rows["s2-r2"]["evolved_instruction"]
    # the input is copied unchanged; the seed's answer is not carried to evolved rows
    assert {r["input"] for r in rows.values() if r["root_id"] == "s2"} == {"apples"}
    assert all(r["output"] is None for r in rows.values())
    # rows that did not come out ok keep their text but have no instruction to train on
    assert rows["s1-r1"]["instruction"] is None and rows["s1-r1"]["evolved_instruction"].startswith("I'm sorry")
    assert rows["s1-r1"]["elimination_rule"] == "refusal"


def test_the_rotation_shifts_by_round_with_the_seed_rows_index():
    out, _ = _run(3)
    for row in out:
        assert row["evol_operation"] == operation_for(ALL_OPERATIONS, row["root_index"], row["round"])
    # by hand: seed 2 gets ops[(2 + 1) % 5] = increase_reasoning, then breadth, then add_constraints
    ops = {r["round"]: r["evol_operation"] for r in out if r["root_id"] == "s2"}
    assert ops == {1: "increase_reasoning", 2: "breadth", 3: "add_constraints"}


def test_without_breadth_only_depth_operations_are_used():
    out = evolve_rounds(Dataset.from_list(SEEDS), EvolInstruct(backend=KeywordBackend(), operations=DEPTH_OPERATIONS), 2)
    assert set(out["evol_operation"]) <= set(DEPTH_OPERATIONS)
    assert {r["evol_operation"] for r in out if r["root_id"] == "s0"} == {"deepen", "concretize"}  # (0 + 1) % 4, (0 + 2) % 4


def test_elimination_can_be_switched_off():
    out, _ = _run(2, elimination=None)
    assert "eliminated" not in out["evol_status"]
    assert all(rule is None for rule in out["elimination_rule"])
    # the refusal now counts as ok and is evolved again
    assert "s1-r2" in out["id"]


def test_a_round_with_no_ok_row_ends_the_run():
    out, backend = _run(3, seeds=[SEEDS[1], SEEDS[3]])
    assert set(out["round"]) == {1} and len(out) == 2 and len(backend.calls) == 2


def test_ids_are_made_when_missing_and_checked_when_present():
    seeds = [{"instruction": "Describe a rainbow."}, {"instruction": "List three fruits."}]
    out = evolve_rounds(Dataset.from_list(seeds), EvolInstruct(backend=KeywordBackend()), 1)
    assert out["parent_id"][:] == ["row-000000", "row-000001"] and out["id"][:] == ["row-000000-r1", "row-000001-r1"]
    with pytest.raises(DataError, match="rows 0 and 1 share the id 'x'"):
        evolve_rounds(Dataset.from_list([{"id": "x", "instruction": "a"}, {"id": "x", "instruction": "b"}]), EvolInstruct(backend=KeywordBackend()))
    with pytest.raises(InvalidRowError, match="row 1, column 'id'"):
        evolve_rounds(Dataset.from_list([{"id": "x", "instruction": "a"}, {"id": None, "instruction": "b"}]), EvolInstruct(backend=KeywordBackend()))


@pytest.mark.parametrize("rounds", [0, -1, 1.5, True])
def test_rounds_below_one_are_refused(rounds):
    with pytest.raises(ConfigError, match="rounds="):
        evolve_rounds(Dataset.from_list(SEEDS), EvolInstruct(backend=KeywordBackend()), rounds)


def test_empty_datasets_missing_columns_and_wrong_evolvers_are_refused():
    backend = KeywordBackend()
    with pytest.raises(EmptyDatasetError, match="no rows"):
        evolve_rounds(Dataset.from_list(SEEDS).select([]), EvolInstruct(backend=backend))
    with pytest.raises(MissingColumnError, match="'instruction'"):
        evolve_rounds(Dataset.from_list([{"prompt": "x"}]), EvolInstruct(backend=backend))
    with pytest.raises(ConfigError, match="evolver must be"):
        evolve_rounds(Dataset.from_list(SEEDS), Elimination())
    assert backend.calls == []


def test_column_types_do_not_depend_on_the_first_batch():
    # the first batches are all ok (evol_reason None); a failure comes later. Without
    # explicit features datasets would type evol_reason as null and crash on the string.
    seeds = [{"instruction": f"Describe colour number {i}."} for i in range(6)] + [{"instruction": "FAIL now."}]
    out = evolve_rounds(Dataset.from_list(seeds), EvolInstruct(backend=KeywordBackend()), 1, batch_size=2)
    assert out["evol_status"][-1] == "failed" and out["evol_reason"][-1] == "backend exploded"


def test_auto_evol_rounds_keep_a_trajectory_per_row():
    reply = "Step 1 - Complexity methods:\n- add a limit\nStep 4 - Final rewrite:\nPlease describe a rainbow in exactly 50 words, naming every colour."
    out = evolve_rounds(Dataset.from_list(SEEDS[:1]), AutoEvolInstruct(backend=ScriptedBackend(reply=reply)), 2)
    assert out["evol_methods"][:] == [["add a limit"], ["add a limit"]]
    # the same reply twice: round 2 returns its parent unchanged, which elimination catches
    assert out["evol_status"][:] == ["ok", "eliminated"] and out["elimination_rule"][1] == "near_duplicate"


def test_round_report_counts_statuses_and_rules():
    out, _ = _run(3)
    report = round_report(out)
    assert report["rounds"][1] == {"rows": 5, "status": {"ok": 2, "eliminated": 1, "failed": 1, "truncated": 1}, "eliminated": {"refusal": 1}}
    assert report["rounds"][3]["rows"] == 2 and report["eliminated"] == {"refusal": 1}


def test_output_folder_has_one_config_per_round_and_loads_with_datasets(tmp_path: Path):
    out, _ = _run(3)
    folder = write_output(out, tmp_path / "out", {"stages": []})
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet")) == [f"data/round_{r}/train.parquet" for r in (1, 2, 3)]
    assert len(load_dataset(str(folder), split="train")) == 9
    round_2 = load_dataset(str(folder), data_dir="data/round_2", split="train")
    assert set(round_2["round"]) == {2} and len(round_2) == 2
    assert load_dataset(str(folder), data_dir="data/round_1", split="train")["id"][:] == [f"s{i}-r1" for i in range(5)]
    assert list(split_rounds(out)) == ["round_1", "round_2", "round_3"]
    # a later run with fewer rounds into the same folder leaves no stale round behind
    write_output(out.filter(lambda r: r["round"] == 1), folder, {"stages": []})
    assert [p.parent.name for p in folder.rglob("*.parquet")] == ["round_1"]
    assert json.loads((folder / "hfevol_run.json").read_text())["stages"] == []
    assert len(load_dataset(str(folder), split="train")) == 5  # not the 9 rows of the first write


def test_two_output_folders_with_the_same_name_load_their_own_rows(tmp_path: Path):
    # datasets keys the cache of a local folder with README configs on the patterns alone;
    # hfevol's layout has no such README, so same-named folders never share a cache entry.
    out, _ = _run(1)
    write_output(out.select([0]), tmp_path / "a" / "evolved", {})
    write_output(out.select([1, 2]), tmp_path / "b" / "evolved", {})
    assert load_dataset(str(tmp_path / "a" / "evolved"), split="train")["id"][:] == ["s0-r1"]
    assert load_dataset(str(tmp_path / "b" / "evolved"), split="train")["id"][:] == ["s1-r1", "s2-r1"]


def test_the_async_path_gives_the_same_rows():
    sync, _ = _run(2)
    backend = KeywordBackend()
    concurrent = evolve_rounds(Dataset.from_list(SEEDS), EvolInstruct(backend=backend), 2, use_async=True)
    assert concurrent.to_list() == sync.to_list() and len(backend.calls) == 7
