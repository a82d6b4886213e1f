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


class _NoUsageServer(TGITestServer):
    """The echo TGI server with its OpenAI routes answering without ``usage``; it keeps every answer's text."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.answers: list[str] = []

    def _openai_envelope(self, kind, choice, gen):
        out = super()._openai_envelope(kind, choice, gen)
        del out["usage"]
        self.answers.append(gen.text)
        return out


def _char_tokens(text: str) -> int:
    """Tokens of ``text`` by the tiny character tokenizer, by construction: one a character, one a special token."""
    from _tiny_lm import SPECIALS

    return len(re.sub("|".join(re.escape(s) for s in SPECIALS), "x", text))


def _respond(url: str, seeds: Path, out: Path, *extra: str) -> int:
    return main(["respond", "--dataset", str(seeds), "--out", str(out), "--endpoint", url, "--max-new-tokens", "32", "--no-cache", *extra])


def test_answers_without_usage_are_counted_with_the_tokenizer(tmp_path, tiny_lm_dir, capsys):
    from _tiny_lm import CHAT_TEMPLATE
    from jinja2 import Template

    seeds = _seeds(tmp_path, 5)
    with _NoUsageServer() as srv:
        assert _respond(srv.url, seeds, tmp_path / "out", "--tokenizer", tiny_lm_dir) == 0
        bodies = [r.body for r in srv.generations()]
        answers = list(srv.answers)
        printed = capsys.readouterr().out
        assert _respond(srv.url, seeds, tmp_path / "bare") == 0  # no tokenizer at hand: unknown
        capsys.readouterr()
        assert _respond(srv.url, seeds, tmp_path / "dry", "--tokenizer", tiny_lm_dir, "--dry-run") == 0
        dry = capsys.readouterr().out
    assert len(bodies) == len(answers) == 5
    rendered = [Template(CHAT_TEMPLATE).render(messages=b["messages"], add_generation_prompt=True) for b in bodies]
    prompt, completion = sum(map(_char_tokens, rendered)), sum(map(_char_tokens, answers))
    tokens = RunRecord.read(tmp_path / "out").extras["tokens"]["respond"]
    assert (tokens["requests"], tokens["unknown"], tokens["prompt"], tokens["completion"]) == (5, 0, prompt, completion)
    name = f"tokenizer {Path(tiny_lm_dir).name}"  # the folder's name, not its path
    assert tokens["counted_by"] == {"server": {"prompt": 0, "completion": 0}, "tokenizer": {"prompt": prompt, "completion": completion, "name": name}}
    assert f"({prompt} prompt + {completion} completion counted by {name})" in printed
    assert _number(dry, "prompt tokens") == prompt  # the dry run counts the same prompts with the same tokenizer
    bare = RunRecord.read(tmp_path / "bare").extras["tokens"]["respond"]
    assert (bare["requests"], bare["unknown"], bare["prompt"], bare["completion"]) == (5, 5, 0, 0)


def test_the_generate_route_counts_completions_from_details_and_prompts_with_the_tokenizer(tmp_path, tiny_lm_dir):
    seeds = _seeds(tmp_path, 4)
    with TGITestServer() as srv:
        assert _respond(srv.url, seeds, tmp_path / "out", "--endpoint-route", "generate", "--tokenizer", tiny_lm_dir) == 0
        bodies = [r.body for r in srv.generations()]
    prompt = sum(_char_tokens(b["inputs"]) for b in bodies)  # the prompt this client rendered and sent
    table = pq.read_table(tmp_path / "out" / "data" / "train.parquet").to_pylist()
    completion = sum(len(r["output"].split()) for r in table)  # the echo model's tokens are words
    tokens = RunRecord.read(tmp_path / "out").extras["tokens"]["respond"]
    assert (tokens["unknown"], tokens["prompt"], tokens["completion"]) == (0, prompt, completion)
    assert tokens["counted_by"]["server"] == {"prompt": 0, "completion": completion}
    assert tokens["counted_by"]["tokenizer"]["prompt"] == prompt and tokens["counted_by"]["tokenizer"]["completion"] == 0


def test_a_published_card_shows_the_token_counts_of_the_record(tmp_path):
    seeds = _seeds(tmp_path, 4)
    with TGITestServer() as srv:
        assert _evolve(srv.url, seeds, tmp_path / "out", "--rounds", "2") == 0
        served = len(srv.generations())
    tokens = RunRecord.read(tmp_path / "out").extras["tokens"]["evolve"]
    assert tokens["requests"] == served == 8 and tokens["prompt"] > 0 and tokens["completion"] > 0
    assert main(["publish", str(tmp_path / "out"), "--version", "v1", "--local-dir", str(tmp_path / "release")]) == 0
    card = (tmp_path / "release" / "README.md").read_text()
    line = next(line for line in card.splitlines() if line.startswith("Tokens the generation commands used"))
    assert f"`evolve` {tokens['prompt']} prompt + {tokens['completion']} completion over 8 answers" in line


def test_the_token_meter_keeps_the_command_options_out_of_fingerprints():
    """The meter's tokenizer finder closes over the command's options, --out among them; in a transform's
    fingerprint, that would make the same run into another folder miss the datasets cache."""
    import argparse

    from _helpers import ScriptedBackend
    from datasets.fingerprint import Hasher

    from hfevol.budget import metered
    from hfevol.evolution import EvolInstruct

    base = ScriptedBackend()
    a, b = (EvolInstruct(backend=metered(base, argparse.Namespace(out=out))) for out in ("/tmp/run-a", "/tmp/run-b"))
    assert Hasher.hash(a) == Hasher.hash(b)
