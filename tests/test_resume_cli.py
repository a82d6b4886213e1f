"""``hfevol evolve --endpoint`` in a subprocess: kill -9 and rerun, retry-failed, start-up errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _servers import free_port, rows

from hfevol.cache import RequestCache
from hfevol.testing import Fault, FaultPlan, TGITestServer

pytestmark = pytest.mark.integration


def _seed_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows(n)))
    return path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "hfevol.cli", *args]


def _evolve_args(url: str, seeds: Path, out: Path, *extra: str) -> list[str]:
    return _cli("evolve", "--dataset", str(seeds), "--out", str(out), "--endpoint", url, "--max-new-tokens", "64",
                "--retry-budget", "20", "--max-attempts", "6", "--no-elimination", *extra)  # fmt: skip


def _keys_of_messages(cache_requests: list[dict]) -> set[tuple[str, int]]:
    return {(json.dumps([{"role": r, "content": c} for r, c in q["messages"]], sort_keys=True), q["seed"]) for q in cache_requests}


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kw)


def test_kill_9_halfway_then_rerun_repeats_no_finished_request(tmp_path):
    seeds, out = _seed_file(tmp_path, 200), tmp_path / "out"
    with TGITestServer(latency=0.05, capacity=4, faults=FaultPlan(rate=0.1, seed=3)) as srv:
        proc = subprocess.Popen(_evolve_args(srv.url, seeds, out, "--max-in-flight", "4"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while len(srv.generations()) < 100 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        first_run = srv.generations()
        assert 100 <= len(first_run) < 200  # killed halfway
        cached = RequestCache(out / ".hfevol-cache" / "requests.sqlite").requests()
        assert len(cached) >= len(first_run) - 4  # at most the in-flight answers were lost with the process
        done_before = _keys_of_messages(cached)

        n_logged = len(srv.log)
        rerun = _run(_evolve_args(srv.url, seeds, out, "--max-in-flight", "4"))
        assert rerun.returncode == 0, rerun.stderr
        second_run = [r for r in srv.log[n_logged:] if r.prompt_key is not None]

    resent = {r.prompt_key for r in second_run}
    assert resent.isdisjoint(done_before)  # zero repeated requests for rows already done
    assert len({r.prompt_key for r in second_run if r.status == 200}) == 200 - len(done_before)
    table = __import__("datasets").Dataset.from_parquet(str(out / "data" / "round_1" / "train.parquet"))
    assert table["evol_status"] == ["ok"] * 200
    assert f"from cache     {len(done_before):>6}  (not sent)" in rerun.stdout


def test_retry_failed_runs_only_the_failed_rows(tmp_path):
    seeds, out = _seed_file(tmp_path, 30), tmp_path / "out"
    with TGITestServer(max_input_tokens=200, max_total_tokens=2000) as srv:  # the prompts of normal rows have < 140 words
        # rows 3 and 7 get a long instruction: the server rejects them (per-row 422)
        data = rows(30)
        for i in (3, 7):
            data[i]["instruction"] = "word " * 200
        seeds.write_text("".join(json.dumps(r) + "\n" for r in data))
        srv.faults.add(Fault("empty"))  # and one empty completion
        first = _run(_evolve_args(srv.url, seeds, out))
        assert first.returncode == 0, first.stderr
        assert "retry-failed" in first.stdout and "rejected 2" in first.stdout
        table = __import__("datasets").Dataset.from_parquet(str(out / "data" / "round_1" / "train.parquet"))
        failed = [i for i, s in enumerate(table["evol_status"]) if s == "failed"]
        assert len(failed) == 3 and {3, 7} <= set(failed)
        assert "`inputs` tokens + `max_new_tokens` must be <=" in table["evol_reason"][3] or "must have less than 200 tokens" in table["evol_reason"][3]
        before = len(srv.generations(status=None))

    with TGITestServer(max_input_tokens=4000, max_total_tokens=8000) as bigger:  # a replica with a longer context
        again = _run(_cli("retry-failed", str(out), "--endpoint", bigger.url))
        assert again.returncode == 0, again.stderr
        sent = bigger.generations(status=None)
        assert len(sent) == 3  # only the failed rows
    assert before == 30  # each row once: a 422 and an empty completion are not retried by the transport
    table = __import__("datasets").Dataset.from_parquet(str(out / "data" / "round_1" / "train.parquet"))
    statuses = list(table["evol_status"])
    assert statuses[3] == statuses[7] == "truncated"  # the echo repeats all 200 words: more than --max-new-tokens 64
    assert [s for i, s in enumerate(statuses) if i not in (3, 7)] == ["ok"] * 28
    assert table["evol_operation"][3] == "breadth" and table["evol_operation"][7] == "increase_reasoning"  # original positions kept: ops[(i + 1) % 5]
    record = json.loads((out / "hfevol_run.json").read_text())
    assert record["retries"][0]["failed_before"] == 3 and record["retries"][0]["failed_after"] == 0


def test_unreachable_endpoint_fails_before_any_work(tmp_path):
    seeds, out = _seed_file(tmp_path, 5), tmp_path / "out"
    result = _run(_evolve_args(f"http://127.0.0.1:{free_port()}", seeds, out))
    assert result.returncode == 2
    assert "error: endpoint check failed before any work started" in result.stderr and "Hint:" in result.stderr
    assert not (out / "data").exists()


def test_bad_token_is_one_clear_line_and_never_printed(tmp_path):
    seeds, out = _seed_file(tmp_path, 5), tmp_path / "out"
    with TGITestServer(api_key="the-right-key") as srv:
        argv = _evolve_args(srv.url, seeds, out, "--token-env", "HF_TOKEN")  # a self-hosted server gets HF_TOKEN only when asked
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**os.environ, "HF_TOKEN": "hf_leaky_wrong_token"})
        assert srv.generations(status=None) == []
    assert result.returncode == 2 and "HTTP 401" in result.stderr
    assert "leaky" not in result.stderr + result.stdout


def test_respond_through_an_endpoint_resumes_and_retries_only_failed_rows(tmp_path):
    seeds, out = tmp_path / "seeds.jsonl", tmp_path / "answered"
    data = rows(12)
    data[5]["instruction"] = "word " * 200  # rejected (422) by the small server below
    seeds.write_text("".join(json.dumps(r) + "\n" for r in data))
    respond = _cli("respond", "--dataset", str(seeds), "--out", str(out), "--endpoint", "URL", "--max-new-tokens", "32", "--retry-budget", "20")
    with TGITestServer(max_input_tokens=200, max_total_tokens=2000) as srv:
        first = _run([srv.url if a == "URL" else a for a in respond])
        assert first.returncode == 0, first.stderr
        assert "endpoint: tgi serving" in first.stdout and "rejected 1" in first.stdout
        assert len(srv.generations(status=None)) == 12
        table = __import__("datasets").Dataset.from_parquet(str(out / "data" / "train.parquet"))
        assert [i for i, s in enumerate(table["output_status"]) if s != "ok"] == [5]
        assert table["output_status"][5] == "failed" and table["output"][0]  # the failure is kept with its status
        # retry-failed against the same server: the failed row is sent again (and fails again), the others come from the cache
        same = _run(_cli("retry-failed", str(out)))
        assert same.returncode == 0, same.stderr
        assert len(srv.generations(status=None)) == 13
        assert f"from cache     {11:>6}  (not sent)" in same.stdout

    with TGITestServer(max_input_tokens=4000, max_total_tokens=8000) as bigger:
        retried = _run(_cli("retry-failed", str(out), "--endpoint", bigger.url))
        assert retried.returncode == 0, retried.stderr
        assert len(bigger.generations(status=None)) == 1
    table = __import__("datasets").Dataset.from_parquet(str(out / "data" / "train.parquet"))
    assert set(table["output_status"]) <= {"ok", "truncated"} and table["output_status"][5] == "truncated"
    record = json.loads((out / "hfevol_run.json").read_text())
    assert [c["command"] for c in record["commands"]] == ["respond"]
    assert [(r["failed_before"], r["failed_after"]) for r in record["retries"]] == [(1, 1), (1, 0)]
