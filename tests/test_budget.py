"""Token counts, ``--dry-run`` and ``--budget-tokens`` on evolve and respond, against the echo test server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
from _servers import rows

from hfevol.cli import main
from hfevol.record import RunRecord
from hfevol.testing import TGITestServer


def _seeds(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows(n)))
    return path


def _evolve(url: str, seeds: Path, out: Path, *extra: str) -> int:
    return main(["evolve", "--dataset", str(seeds), "--out", str(out), "--endpoint", url, "--max-new-tokens", "64", "--no-elimination", *extra])


def _number(text: str, label: str) -> int:
    return int(re.search(rf"{label}\s+≤?\s*(\d+)", text).group(1))


def test_tokens_are_counted_from_the_servers_usage(tmp_path, capsys):
    seeds = _seeds(tmp_path, 6)
    with TGITestServer() as srv:
        assert _evolve(srv.url, seeds, tmp_path / "out", "--rounds", "2") == 0
        served = srv.generations()
    tokens = RunRecord.read(tmp_path / "out").extras["tokens"]["evolve"]
    assert tokens["requests"] == len(served) == 12 and tokens["unknown"] == 0
    table = pq.read_table(tmp_path / "out" / "data" / "round_1" / "train.parquet").to_pylist()
    # the echo model answers "Rewritten (<seed>): <instruction>", one token per word
    completion_r1 = sum(len(f"Rewritten ({r['evol_seed']}): {r['parent_instruction']}".split()) for r in table)
    assert tokens["completion"] > completion_r1 > 0 and tokens["prompt"] > 0
    assert f"tokens: {tokens['prompt']} prompt + {tokens['completion']} completion over 12 answer(s)" in capsys.readouterr().out


def test_dry_run_counts_every_prompt_and_sends_nothing(tmp_path, capsys):
    seeds = _seeds(tmp_path, 10)
    with TGITestServer() as srv:
        capsys.readouterr()
        assert _evolve(srv.url, seeds, tmp_path / "dry", "--rounds", "3", "--dry-run", "--price-per-mtok", "1,2") == 0
        evolve_out = capsys.readouterr().out
        assert main(["respond", "--dataset", str(seeds), "--out", str(tmp_path / "dry2"), "--endpoint", srv.url, "--max-new-tokens", "100",
                     "--dry-run", "--price-per-mtok", "0.5,4", "--num-shards", "2", "--shard-index", "1"]) == 0  # fmt: skip
        respond_out = capsys.readouterr().out
        assert srv.generations(status=None) == []
    assert not (tmp_path / "dry" / "hfevol_run.json").exists()
    assert _number(evolve_out, "rows") == 10 and _number(evolve_out, "requests") == 10
    assert "(at most 30 over 3 rounds)" in evolve_out
    assert _number(evolve_out, "completion tokens") == 3 * 10 * 64
    prompt = _number(evolve_out, "prompt tokens")
    bound = int(re.search(r"at most (\d+) over every round", evolve_out).group(1))
    assert bound == prompt + 2 * (prompt + 10 * 64)
    cost = float(re.search(r"cost\s+≤\s+([\d.]+)", evolve_out).group(1))
    assert abs(cost - (bound * 1 + 1920 * 2) / 1e6) < 1e-4
    # respond: shard 1 of 2 holds rows 5..9; four characters a token of the rendered prompt
    assert _number(respond_out, "rows") == 5 and _number(respond_out, "completion tokens") == 500
    assert _number(respond_out, "prompt tokens") >= sum(len(r["instruction"]) for r in rows(10)[5:]) / 4


def test_budget_stops_sending_then_a_larger_budget_resumes_without_sending_twice(tmp_path, capsys):
    seeds = _seeds(tmp_path, 20)
    with TGITestServer() as srv:
        probe = tmp_path / "probe"
        (tmp_path / "one").mkdir()
        assert _evolve(srv.url, _seeds(tmp_path / "one", 1), probe) == 0
        per_row = sum(RunRecord.read(probe).extras["tokens"]["evolve"][k] for k in ("prompt", "completion"))
        n_probe = len(srv.generations())

        out = tmp_path / "out"
        budget = 5 * per_row
        args = ("--rounds", "2", "--max-in-flight", "1")
        assert _evolve(srv.url, seeds, out, *args, "--budget-tokens", str(budget)) == 0
        first = srv.generations()[n_probe:]
        first_run = capsys.readouterr().out
        record = RunRecord.read(out)
        r1 = pq.read_table(out / "data" / "round_1" / "train.parquet").to_pylist()
        statuses = [r["evol_status"] for r in r1]
        assert 0 < statuses.count("ok") < 20 and set(statuses) == {"ok", "not_sent"}
        assert all("token budget" in r["evol_reason"] for r in r1 if r["evol_status"] == "not_sent")
        used = record.extras["tokens"]["evolve"]["prompt"] + record.extras["tokens"]["evolve"]["completion"]
        assert budget <= used < budget + 2 * per_row  # one request in flight: at most one answer past the budget
        assert len(first) == record.extras["tokens"]["evolve"]["requests"]
        assert "not sent: the budget of" in first_run or "request(s) not sent" in first_run

        assert _evolve(srv.url, seeds, out, *args, "--budget-tokens", str(1000 * per_row)) == 0
        second = srv.generations()[n_probe + len(first) :]
    sent_first = {r.prompt_key for r in first}
    assert sent_first.isdisjoint({r.prompt_key for r in second})  # nothing sent twice
    assert len(first) + len(second) == 40  # every request of both rounds, once
    final = RunRecord.read(out)
    assert final.extras["report"]["rounds"]["1"]["status"] == {"ok": 20} and final.extras["report"]["rounds"]["2"]["status"] == {"ok": 20}


def test_respond_budget_marks_rows_not_sent_and_resumes(tmp_path):
    seeds = _seeds(tmp_path, 12)
    with TGITestServer() as srv:

        def respond(out, budget):
            return main(["respond", "--dataset", str(seeds), "--out", str(out), "--endpoint", srv.url, "--max-new-tokens", "32",
                         "--max-in-flight", "1", "--budget-tokens", str(budget)])  # fmt: skip

        assert respond(tmp_path / "a", 1) == 0  # the first answer uses the budget
        first = srv.generations()
        table = pq.read_table(tmp_path / "a" / "data" / "train.parquet").to_pylist()
        assert [r["output_status"] for r in table].count("ok") == len(first) == 1
        assert [r["output_status"] for r in table].count("not_sent") == 11
        assert respond(tmp_path / "a", 10**9) == 0
        second = srv.generations()[1:]
    assert len(second) == 11 and first[0].prompt_key not in {r.prompt_key for r in second}
    table = pq.read_table(tmp_path / "a" / "data" / "train.parquet").to_pylist()
    assert {r["output_status"] for r in table} == {"ok"}
