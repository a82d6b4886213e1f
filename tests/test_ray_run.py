"""``hfevol run``: the shards of one stage as local processes or Ray tasks, re-running only unfinished shards, then merged."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from _servers import rows

from hfevol.cli import main
from hfevol.shards import MARKER_FILE
from hfevol.testing import TGITestServer

pytestmark = pytest.mark.integration


def _tables(folder: Path) -> dict[str, list[dict]]:
    return {p.relative_to(folder).as_posix(): pq.read_table(p).to_pylist() for p in sorted((folder / "data").rglob("*.parquet"))}


def _stage(url: str, seeds: Path, out: Path) -> list[str]:
    return ["evolve", "--dataset", str(seeds), "--out", str(out), "--endpoint", url, "--rounds", "2", "--max-new-tokens", "64", "--no-elimination"]


@pytest.fixture
def seeds(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows(9)))
    return path


def test_local_processes_run_only_unfinished_shards_and_merge(tmp_path, seeds, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    with TGITestServer() as srv:
        assert main(_stage(srv.url, seeds, tmp_path / "whole")) == 0
        n_whole = len(srv.generations())
        assert main(["run", "--num-shards", "3", *_stage(srv.url, seeds, tmp_path / "job")]) == 0
        assert len(srv.generations()) == 2 * n_whole
        assert _tables(tmp_path / "job") == _tables(tmp_path / "whole")
        # a lost shard: only it runs again, the others are complete
        shutil.rmtree(tmp_path / "job.shards" / "shard-00001")
        (tmp_path / "job.shards" / "shard-00002" / ".hfevol-cache").mkdir(exist_ok=True)
        kept = {i: (tmp_path / "job.shards" / f"shard-0000{i}" / "hfevol_run.json").stat().st_mtime_ns for i in (0, 2)}
        assert main(["run", "--num-shards", "3", *_stage(srv.url, seeds, tmp_path / "job")]) == 0
        assert kept == {i: (tmp_path / "job.shards" / f"shard-0000{i}" / "hfevol_run.json").stat().st_mtime_ns for i in (0, 2)}  # not run again
    assert (tmp_path / "job.shards" / "shard-00001" / MARKER_FILE).is_file()
    assert _tables(tmp_path / "job") == _tables(tmp_path / "whole")


def test_run_refuses_shard_options_in_the_stage(capsys, tmp_path):
    assert main(["run", "--num-shards", "2", "evolve", "--out", str(tmp_path / "o"), "--shard-index", "1"]) == 2
    assert "give --shard-index to hfevol run" in capsys.readouterr().err


def test_ray_tasks_end_to_end(tmp_path, seeds, monkeypatch):
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        with TGITestServer() as srv:
            assert main(_stage(srv.url, seeds, tmp_path / "whole")) == 0
            assert main(["run", "--ray", "--num-shards", "2", "--task-cpus", "1", *_stage(srv.url, seeds, tmp_path / "job")]) == 0
    finally:
        ray.shutdown()
    assert _tables(tmp_path / "job") == _tables(tmp_path / "whole")
    assert all((tmp_path / "job.shards" / f"shard-{i:05d}" / MARKER_FILE).is_file() for i in range(2))
