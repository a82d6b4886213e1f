"""IFD / IC-IFD through a real vLLM server (/tokenize and prompt_logprobs) against local ``Score`` of the same model.

The server (``vllm_server``, test_vllm_real.py) serves the embedded model's float32 cache;
local scoring runs the same weights in transformers, so every loss agrees within 1e-4
relative. A row longer than the server's ``max_model_len`` is ``too_long`` there (its
length is counted with the tokenizer; scoring it locally would only cost minutes).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from hfevol.backends.openai import OpenAIBackend
from hfevol.backends.retry import RetryPolicy
from hfevol.scoring import Score
from hfevol.scoring.endpoint import EndpointScore

pytestmark = [pytest.mark.vllm, pytest.mark.integration]

PATIENT = RetryPolicy(max_attempts=3, max_total_seconds=600, timeout=300, initial_backoff=0.2, max_backoff=1.0)
ROWS = [0, 1, 4, 5, 9, 30]  # rows 4, 5 and 9 have an input
LOSSES = ("loss_q", "loss_a_given_q", "loss_a", "ifd", "ic_ifd")


LONG = "The quick brown fox jumps over the lazy dog. "


def _batch(server=None) -> dict[str, list]:
    """The built-in rows of ``ROWS``; with ``server``, one more row longer than its context (vLLM cannot score it whole)."""
    from hfevol.io import builtin_sample

    batch = builtin_sample().select(ROWS).select_columns(["instruction", "input", "output"]).to_dict()
    if server is not None:
        batch["instruction"].append("Repeat the sentence below many times.")
        batch["input"].append("")
        batch["output"].append(LONG * (server.max_model_len // 10 + 10))  # about 10 tokens a sentence
    return batch


def _agree(local: dict, remote: dict, rows: list[int]) -> None:
    for column in ("tokens_q", "tokens_a_given_q", "tokens_a", "score_truncated"):
        assert [remote[column][i] for i in rows] == [local[column][i] for i in rows], column
    for column in LOSSES:
        for i in rows:
            assert math.isclose(remote[column][i], local[column][i], rel_tol=1e-4), (column, i, remote[column][i], local[column][i])


@pytest.mark.parametrize("mode", ["reference", "chat"])
def test_endpoint_scores_match_local_scoring(vllm_server, embedded, mode):
    short = _batch()
    n = len(short["instruction"])
    local = Score(model="embedded", device="cpu", dtype="float32", mode=mode)(short, list(range(n)))
    backend = OpenAIBackend(urls=vllm_server.url + "/v1", tokenizer="embedded", retry=PATIENT)
    batch = _batch(vllm_server) if mode == "reference" else short  # the long row once is enough
    remote = EndpointScore(endpoint=backend, mode=mode)(batch, list(range(len(batch["instruction"]))))
    assert remote["score_status"][:n] == local["score_status"] == ["ok"] * n
    _agree(local, remote, list(range(n)))
    if mode == "chat":
        return
    # the long row: more tokens than the server's context (counted here with the tokenizer); one token is generated
    limit = vllm_server.max_model_len - 1
    assert len(embedded.tokenizer(batch["output"][-1])["input_ids"]) > limit  # the answer alone is longer
    assert remote["score_status"][-1] == "too_long"
    assert remote["score_reason"][-1].endswith(f"the server takes at most {limit} (max_model_len less the generated token)")


def test_max_length_cuts_the_rows_alike_and_lets_the_long_row_through(vllm_server, embedded):
    batch = _batch(vllm_server)
    n = len(batch["instruction"])
    local = Score(model="embedded", device="cpu", dtype="float32", max_length=48)(batch, list(range(n)))
    remote = EndpointScore(endpoint=OpenAIBackend(urls=vllm_server.url, retry=PATIENT), max_length=48)(batch, list(range(n)))
    assert remote["score_status"] == local["score_status"]
    assert remote["score_truncated"][-1] and sum(remote["score_truncated"]) >= 2  # the long row and some built-in ones are cut
    _agree(local, remote, [i for i in range(n) if local["score_status"][i] == "ok"])


def test_cli_score_through_vllm_matches_local(vllm_server, embedded, tmp_path, capsys):
    from datasets import Dataset

    from hfevol.cli import main

    batch = _batch()
    seeds = tmp_path / "rows.jsonl"
    seeds.write_text("".join(json.dumps({k: batch[k][i] for k in batch}) + "\n" for i in range(len(ROWS))))
    out = tmp_path / "scored"
    assert main(["score", "--dataset", str(seeds), "--out", str(out), "--endpoint", vllm_server.url + "/v1", "--endpoint-api", "openai"]) == 0
    assert f"through {vllm_server.url}" in capsys.readouterr().out
    record = json.loads((out / "hfevol_run.json").read_text())
    stage = record["stages"][0]
    assert stage["logprobs"] == "vllm prompt_logprobs" and stage["backend"]["served_model"] == Path(vllm_server.model).name
    assert stage["backend"]["details"]["server"]["max_model_len"] == vllm_server.max_model_len
    scored = Dataset.from_parquet(str(out / "data" / "train.parquet")).to_dict()
    local = Score(model="embedded", device="cpu", dtype="float32")({k: batch[k][: len(ROWS)] for k in batch}, list(range(len(ROWS))))
    _agree(local, scored, list(range(len(ROWS))))
