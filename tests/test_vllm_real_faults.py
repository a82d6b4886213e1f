"""Faults a real vLLM server produces: a request over its context, a crash mid-run, a server that stays down.

The CLI runs in subprocesses against the session's real server (``vllm_server``, see
test_vllm_real.py). The crash test restarts the server once (one to two minutes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hfevol.cache import RequestCache

pytestmark = [pytest.mark.vllm, pytest.mark.integration]

ROWS = 80
"""Rows of each job in the crash test."""


def _seeds(tmp_path: Path, rows: list[dict], name: str = "seeds.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _evolve(url: str, seeds: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hfevol.cli", "evolve", "--dataset", str(seeds), "--out", str(out), "--endpoint", url + "/v1",
            "--endpoint-api", "openai", "--max-new-tokens", "16", "--temperature", "0", "--no-elimination", "--request-timeout", "300",
            *extra]  # fmt: skip


def _run(cmd: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _table(out: Path):
    import datasets

    return datasets.Dataset.from_parquet(str(out / "data" / "round_1" / "train.parquet"))


def _answered(out: Path) -> int:
    path = out / ".hfevol-cache" / "requests.sqlite"
    return len(RequestCache(path).requests()) if path.exists() else 0


def _sent(server) -> float:
    """Requests the server has finished since it started (vLLM's own counter)."""
    return server.metrics().get("vllm:request_success_total", 0.0)


def test_a_request_over_the_context_fails_its_row_with_the_servers_message(vllm_server, tmp_path):
    rows = [{"instruction": "Name a colour."}, {"instruction": "word " * (vllm_server.max_model_len + 50)}, {"instruction": "Name a fruit."}]
    out = tmp_path / "out"
    before = _sent(vllm_server)
    result = _run(_evolve(vllm_server.url, _seeds(tmp_path, rows), out, "--max-attempts", "5"))
    assert result.returncode == 0, result.stderr
    table = _table(out)
    assert table["evol_status"][1] == "failed" and table["evol_status"][0] != "failed" and table["evol_status"][2] != "failed"
    reason = table["evol_reason"][1]
    assert "HTTP 400" in reason and f"maximum context length is {vllm_server.max_model_len} tokens" in reason, reason  # vLLM's own words
    assert "gave up after" not in reason  # a 400 is not retried
    assert f"retries        {0:>6}" in result.stdout and "rejected 1" in result.stdout
    assert _sent(vllm_server) - before == 2  # the two short rows; the long one never reached the engine


def test_a_crash_mid_run_then_the_server_comes_back_or_never_does(vllm_server, tmp_path):
    """Two jobs run when the server is killed: a patient one waits and finishes after the restart;
    one with a short retry budget gives up on its unanswered rows, with a cause, and says so.
    Re-runs send nothing already answered."""
    patient_out, short_out = tmp_path / "patient", tmp_path / "short"
    # enough rows that neither job can finish before the other has started, on a fast machine too
    # (24 rows once did: one job ended before the crash)
    rows = [{"instruction": f"Describe the number {i} in one sentence."} for i in range(ROWS)]
    patient_seeds, short_seeds = (
        _seeds(tmp_path, rows, "a.jsonl"),
        _seeds(tmp_path, [{"instruction": r["instruction"] + " Be brief."} for r in rows], "b.jsonl"),
    )
    patient_cmd = _evolve(vllm_server.url, patient_seeds, patient_out, "--max-in-flight", "2", "--max-attempts", "100", "--retry-budget", "900")
    short_cmd = _evolve(vllm_server.url, short_seeds, short_out, "--max-in-flight", "2", "--max-attempts", "3", "--retry-budget", "10")
    patient = subprocess.Popen(patient_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    short = subprocess.Popen(short_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while (_answered(patient_out) < 4 or _answered(short_out) < 4) and time.monotonic() < deadline:
            for name, proc in (("patient", patient), ("short", short)):
                assert proc.poll() is None, f"the {name} job ended before the crash: {proc.communicate()[1][-2000:]}"
            time.sleep(0.2)
        vllm_server.kill()
        done_before_crash = _answered(patient_out)
        assert 4 <= done_before_crash < ROWS, done_before_crash

        # the server stays down: the short job gives up on every unanswered row, with a cause, and ends
        short_stdout, short_stderr = short.communicate(timeout=120)
        assert short.returncode == 0, short_stderr
        statuses = _table(short_out)["evol_status"]
        failed = [i for i, s in enumerate(statuses) if s == "failed"]
        assert failed and len(failed) == ROWS - _answered(short_out)
        assert all("cannot connect" in r or "connection" in r for r in (_table(short_out)["evol_reason"][i] for i in failed))
        assert f"failed         {len(failed):>6}  (connection {len(failed)})" in short_stdout
        assert "retry-failed" in short_stdout
        assert patient.poll() is None  # the patient job is still waiting

        vllm_server.start()
        patient_stdout, patient_stderr = patient.communicate(timeout=600)
    finally:
        for proc in (patient, short):
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        vllm_server.start()  # the session's server is up again for the tests after this one
    assert patient.returncode == 0, patient_stderr
    assert set(_table(patient_out)["evol_status"]) <= {"ok", "truncated"}  # every row finished
    assert "connection" in patient_stdout.split("retries", 1)[1].splitlines()[0]  # it waited through the crash

    # a re-run of the patient job sends nothing (the datasets cache and the request cache hold every row)
    before = _sent(vllm_server)
    rerun = _run(patient_cmd)
    assert rerun.returncode == 0, rerun.stderr
    assert _sent(vllm_server) == before
    # retry-failed on the short job sends only its failed rows (the server counts them)
    retried = _run([sys.executable, "-m", "hfevol.cli", "retry-failed", str(short_out)])
    assert retried.returncode == 0, retried.stderr
    assert _sent(vllm_server) - before == len(failed)
    assert set(_table(short_out)["evol_status"]) <= {"ok", "truncated"}
