"""Deterministic shards and ``hfevol merge``: N shards of evolve, respond and score merge to exactly the unsharded output."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from _servers import rows

from hfevol.cli import main
from hfevol.record import RunRecord
from hfevol.shards import MARKER_FILE, ShardSpec
from hfevol.testing import TGITestServer


def _seeds(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows(n)))
    return path


def _tables(folder: Path) -> dict[str, list[dict]]:
    """Every data file of an output folder, by its path, as rows (read with pyarrow, not with hfevol)."""
    return {p.relative_to(folder).as_posix(): pq.read_table(p).to_pylist() for p in sorted((folder / "data").rglob("*.parquet"))}


def _evolve(url: str, seeds: Path, out: Path, *extra: str) -> int:
    return main(["evolve", "--dataset", str(seeds), "--out", str(out), "--endpoint", url, "--rounds", "3", "--max-new-tokens", "64",
                 "--operations", "concretize", "deepen", "increase_reasoning", "--no-elimination", *extra])  # fmt: skip


def _sharded(run, n: int, tmp_path: Path, name: str) -> Path:
    folders = []
    for i in range(n):
        folder = tmp_path / f"{name}-{n}-{i}"
        assert run(folder, "--num-shards", str(n), "--shard-index", str(i)) == 0
        assert (folder / MARKER_FILE).is_file()
        folders.append(str(folder))
    merged = tmp_path / f"{name}-{n}-merged"
    assert main(["merge", *reversed(folders), "--out", str(merged)]) == 0  # any order
    return merged


def test_bounds_are_contiguous_and_cover_the_input():
    for total in (0, 1, 7, 10, 2048):
        for n in (1, 2, 3, 4, 7):
            spans = [ShardSpec(n, i).bounds(total) for i in range(n)]
            assert spans[0][0] == 0 and spans[-1][1] == total
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
            assert max(b - a for a, b in spans) - min(b - a for a, b in spans) <= 1


@pytest.mark.parametrize("bad", [(0, 0), (2, 2), (3, -1)])
def test_a_bad_shard_is_refused(capsys, tmp_path, bad):
    n, i = bad
    assert main(["evolve", "--out", str(tmp_path / "o"), "--num-shards", str(n), "--shard-index", str(i)]) == 2
    assert "--num-shards" in capsys.readouterr().err


def test_evolve_shards_merge_to_the_unsharded_output(tmp_path, capsys):
    seeds = _seeds(tmp_path, 10)
    with TGITestServer() as srv:

        def run(out, *extra):
            return _evolve(srv.url, seeds, out, *extra)

        whole = tmp_path / "whole"
        assert run(whole) == 0
        expected = _tables(whole)
        merged = {n: _sharded(run, n, tmp_path, "evolve") for n in (1, 2, 3)}
    assert sorted(expected) == ["data/round_1/train.parquet", "data/round_2/train.parquet", "data/round_3/train.parquet"]
    ops = [r["evol_operation"] for r in expected["data/round_1/train.parquet"]]
    assert ops[:4] == ["deepen", "increase_reasoning", "concretize", "deepen"]  # ops[(i + 1) % 3] in round 1, by hand
    assert [r["id"] for r in expected["data/round_3/train.parquet"]] == [f"row-{i:06d}-r3" for i in range(10)]
    reference = RunRecord.read(whole)
    for n, folder in merged.items():
        assert _tables(folder) == expected, f"{n} shards"
        record = RunRecord.read(folder)
        assert [(s.stage, s.counts, s.input) for s in record.stages] == [(s.stage, s.counts, s.input) for s in reference.stages]
        assert record.seed_data == reference.seed_data and record.rows == reference.rows == 30
        assert record.extras["report"] == reference.extras["report"]
        assert "shard" not in record.extras and record.extras["merged_from"]["num_shards"] == n
        assert [f.sha256 for f in record.files] == [f.sha256 for f in reference.files]  # byte-identical data files


def test_respond_shards_merge_to_the_unsharded_output(tmp_path):
    seeds = _seeds(tmp_path, 9)
    with TGITestServer() as srv:
        evolved = tmp_path / "evolved"
        assert _evolve(srv.url, seeds, evolved) == 0

        def run(out, *extra):
            return main(["respond", "--dataset", str(evolved), "--out", str(out), "--endpoint", srv.url, "--max-new-tokens", "64",
                         "--temperature", "0.5", *extra])  # fmt: skip

        whole = tmp_path / "whole"
        assert run(whole) == 0
        expected = _tables(whole)
        merged = {n: _sharded(run, n, tmp_path, "respond") for n in (2, 3)}
    seeds_used = {r["output_seed"] for t in expected.values() for r in t}
    assert len(seeds_used) == 27  # one seed per row (keyed by id), all different
    for n, folder in merged.items():
        assert _tables(folder) == expected, f"{n} shards"
        record, reference = RunRecord.read(folder), RunRecord.read(whole)
        assert len(record.stages) == len(reference.stages) == 4  # three rounds chained, then respond
        assert [s.counts for s in record.stages] == [s.counts for s in reference.stages]
        assert record.extras["responses"] == reference.extras["responses"]
        assert record.extras["tokens"]["respond"] == reference.extras["tokens"]["respond"]  # summed over the shards
        assert record.extras["tokens"]["evolve"] == reference.extras["tokens"]["evolve"]  # from the input, not summed


def test_score_shards_merge_to_the_unsharded_output(tmp_path, tiny_lm_dir):
    data = [{"instruction": f"Say {w}.", "input": "", "output": f"{w} {w}!"} for w in ("hi", "yes", "no", "maybe", "ok", "fine", "")]
    seeds = tmp_path / "pairs.jsonl"
    seeds.write_text("".join(json.dumps(r) + "\n" for r in data))

    def run(out, *extra):  # one row per model batch: the same arithmetic whatever the shard layout
        return main(["score", "--dataset", str(seeds), "--out", str(out), "--model", tiny_lm_dir, "--device", "cpu", "--batch-size", "1", *extra])

    whole = tmp_path / "whole"
    assert run(whole) == 0
    expected = _tables(whole)
    for n in (2, 3):
        folder = _sharded(run, n, tmp_path, "score")
        assert _tables(folder) == expected, f"{n} shards"
        assert RunRecord.read(folder).extras["summary"] == RunRecord.read(whole).extras["summary"]


def _two_shards(tmp_path: Path, srv: TGITestServer, seeds: Path, name: str, *extra: str) -> list[Path]:
    folders = [tmp_path / f"{name}-{i}" for i in range(2)]
    for i, folder in enumerate(folders):
        assert _evolve(srv.url, seeds, folder, "--num-shards", "2", "--shard-index", str(i), *extra) == 0
    return folders


def test_merge_refuses_incomplete_overlapping_and_mixed_shards(tmp_path, capsys):
    seeds = _seeds(tmp_path, 6)
    with TGITestServer() as srv:
        a = _two_shards(tmp_path, srv, seeds, "a")
        b = _two_shards(tmp_path, srv, seeds, "b", "--seed", "7")
        third = tmp_path / "third-1"
        assert _evolve(srv.url, seeds, third, "--num-shards", "3", "--shard-index", "1") == 0
    capsys.readouterr()

    def refused(*folders) -> str:
        assert main(["merge", *map(str, folders), "--out", str(tmp_path / "merged")]) == 2
        assert not (tmp_path / "merged").exists()
        return capsys.readouterr().err

    unfinished = tmp_path / "unfinished"
    (unfinished / ".hfevol-cache").mkdir(parents=True)  # a killed shard leaves only its request cache
    assert "'" + str(unfinished) + "' is not complete" in refused(a[0], unfinished)
    assert "shard 1 of 2 is missing" in refused(a[0])
    assert "overlaps" in refused(a[0], a[0], a[1])
    assert "different shard counts" in refused(a[0], third)
    err = refused(a[0], b[1])
    assert "another configuration" in err and "seed" in err


def test_max_in_flight_is_divided_between_the_shards(tmp_path):
    seeds = _seeds(tmp_path, 4)
    with TGITestServer() as srv:
        out = tmp_path / "s0"
        assert _evolve(srv.url, seeds, out, "--num-shards", "4", "--shard-index", "0", "--max-in-flight", "10") == 0
    options = RunRecord.read(out).commands[-1].options
    assert options["max_in_flight"] == 2 and options["max_in_flight_per_job"] == 10


@pytest.mark.integration
def test_a_killed_shard_is_refused_by_merge_then_resumes_from_its_own_cache(tmp_path, capsys):
    import os
    import signal
    import subprocess
    import sys
    import time

    from hfevol.cache import RequestCache

    seeds = _seeds(tmp_path, 80)
    done, killed = tmp_path / "s0", tmp_path / "s1"
    with TGITestServer(latency=0.02, capacity=2) as srv:
        assert _evolve(srv.url, seeds, done, "--num-shards", "2", "--shard-index", "0") == 0
        n0 = len(srv.generations())
        argv = [sys.executable, "-m", "hfevol.cli", "evolve", "--dataset", str(seeds), "--out", str(killed), "--endpoint", srv.url, "--rounds", "3",
                "--max-new-tokens", "64", "--operations", "concretize", "deepen", "increase_reasoning", "--no-elimination", "--max-in-flight", "4",
                "--num-shards", "2", "--shard-index", "1"]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while len(srv.generations()) < n0 + 40 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        capsys.readouterr()
        assert main(["merge", str(done), str(killed), "--out", str(tmp_path / "m")]) == 2
        assert f"'{killed}' is not complete" in capsys.readouterr().err
        cached = {json.dumps(q["messages"]) + str(q["seed"]) for q in RequestCache(killed / ".hfevol-cache" / "requests.sqlite").requests()}
        assert len(cached) >= 30
        before = len(srv.generations())
        assert main(argv[3:]) == 0
        again = srv.generations()[before:]
    resent = {json.dumps([[m["role"], m["content"]] for m in r.body["messages"]]) + str(r.body.get("seed")) for r in again}
    assert len(again) == 120 - len(cached) and len(resent) == len(again)
    capsys.readouterr()
    assert main(["merge", str(done), str(killed), "--out", str(tmp_path / "m")]) == 0, capsys.readouterr().err
    assert RunRecord.read(tmp_path / "m").rows == 240
