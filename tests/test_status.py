"""One ``Status`` literal: every status a transform writes is one of ``hfevol.status.STATUSES``."""

from __future__ import annotations

import ast
from pathlib import Path

from _helpers import ScriptedBackend
from datasets import Dataset

from hfevol import EvolInstruct, Respond
from hfevol.backends import GenerationResult
from hfevol.evolution import Elimination
from hfevol.scoring import Score
from hfevol.status import CROSSVAL_STATUSES, STATUSES
from hfevol.transform import outcome

PACKAGE = Path(__file__).resolve().parent.parent / "hfevol"


def test_the_literal_lists_each_status_once():
    assert len(set(STATUSES)) == len(STATUSES) and "ok" in STATUSES


def test_outcome_returns_only_declared_statuses():
    cases = [
        (GenerationResult(text=None, finish_reason="error", error="boom"), None, None, "failed"),
        (GenerationResult(text="", finish_reason="stop"), "", None, "failed"),
        (GenerationResult(text="x", finish_reason="stop"), None, "no rewrite", "parse_failed"),
        (GenerationResult(text="x", finish_reason="length"), None, "no rewrite", "truncated"),
        (GenerationResult(text="x", finish_reason="length"), "x", None, "truncated"),
        (GenerationResult(text="x", finish_reason="stop"), "x", None, "ok"),
    ]
    for result, text, problem, expected in cases:
        assert outcome(result, text, 16, problem)[0] == expected
    assert {case[-1] for case in cases} <= set(STATUSES)


def test_generation_transforms_write_only_declared_statuses():
    batch = {"id": ["a", "b", "c"], "instruction": ["Name three primes.", None, "Say hi."], "input": ["", "", ""], "evol_status": ["ok", "ok", "eliminated"]}
    answered = Respond(backend=ScriptedBackend(reply="Two, three and five."))(batch, [0, 1, 2])
    assert answered["output_status"] == ["ok", "invalid_input", "skipped"]
    evolved = EvolInstruct(backend=ScriptedBackend(reply="Name three primes larger than one hundred and explain why."))(
        {"instruction": ["Name three primes.", None]}, [0, 1]
    )
    assert evolved["evol_status"] == ["ok", "invalid_input"]
    checked = Elimination()({**evolved, "evolved_instruction": ["Name three primes.", None], "parent_instruction": ["Name three primes.", None]})
    assert checked["evol_status"] == ["eliminated", "invalid_input"]
    assert {*answered["output_status"], *evolved["evol_status"], *checked["evol_status"]} <= set(STATUSES)


def test_scoring_writes_only_declared_statuses(tiny_lm_dir):
    ds = Dataset.from_dict(
        {"instruction": ["Say hi.", None, "Say no.", "Fine."], "output": ["Hi!", "x", None, "\n"], "evol_status": ["ok", "ok", "eliminated", "ok"]}
    )
    scored = ds.map(Score(model=tiny_lm_dir, device="cpu"), batched=True)
    assert scored["score_status"] == ["ok", "invalid_input", "skipped", "undefined"]
    assert set(scored["score_status"]) <= set(STATUSES)


def test_every_status_written_in_the_source_is_declared():
    """The statuses no offline transform reaches here (a server's refusals) are checked in the code itself."""
    written: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if "testing" in path.relative_to(PACKAGE).parts:  # the test servers speak HTTP statuses, not row statuses
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "status" and isinstance(node.value, ast.Constant):
                written.add(node.value.value)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                for target in node.targets:
                    if isinstance(target, ast.Subscript) and "status" in ast.unparse(target):
                        written.add(node.value.value)
    assert {"too_long", "error", "skipped", "invalid_input"} <= written  # the scan finds the writes it is meant to find
    assert written <= set(STATUSES) | set(CROSSVAL_STATUSES), written - set(STATUSES) - set(CROSSVAL_STATUSES)
