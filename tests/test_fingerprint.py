"""`ds.map(evolve)` must hash to the same fingerprint in a fresh process, so the cache serves it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent

_SCRIPT = r"""
import json, sys
sys.path.insert(0, {tests!r})
from datasets import load_dataset
from hfevol import EvolInstruct, SamplingParams, TransformersBackend
from _helpers import ScriptedBackend

ds = load_dataset("json", data_files={data!r}, split="train")
if {real!r}:
    backend = TransformersBackend(model="embedded", device="cpu")
    backend.loaded  # runtime state exists before hashing, as in a real session
    if {forbid!r}:
        def refuse(self, requests):
            raise RuntimeError("the model was called although the cache should serve this map")
        TransformersBackend.generate = refuse
else:
    backend = ScriptedBackend()
    backend.calls  # creates an unpicklable lock: runtime state
evolve = EvolInstruct(backend=backend, sampling=SamplingParams(max_new_tokens=8), seed=3)
out = ds.map(evolve, batched=True, with_indices=True)
calls = len(backend.calls) if not {real!r} else None
print(json.dumps({{"fingerprint": out._fingerprint, "calls": calls, "rows": list(out["evolved_instruction"])}}))
"""


def _run(data: Path, *, real: bool, forbid: bool = False) -> dict:
    code = _SCRIPT.format(tests=str(TESTS), data=str(data), real=real, forbid=forbid)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join(json.dumps({"instruction": t}) for t in ["Add 2 and 3.", "Name a colour."]) + "\n")
    return path


def test_fingerprint_is_stable_across_processes_and_the_cache_serves_the_second_map(data_file):
    first = _run(data_file, real=False)
    second = _run(data_file, real=False)
    assert first["calls"] == 2
    assert second["fingerprint"] == first["fingerprint"]
    assert second["calls"] == 0, "the second map should have been read from the datasets cache"
    assert second["rows"] == first["rows"]


@pytest.mark.slow
def test_a_loaded_model_stays_out_of_the_fingerprint(data_file):
    first = _run(data_file, real=True)
    second = _run(data_file, real=True, forbid=True)
    assert second["fingerprint"] == first["fingerprint"]
    assert second["rows"] == first["rows"]
