"""Difficulty judges: parse rules on crafted replies with unparsed counts, and the probability judge against a plain forward pass."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hfevol.analysis.difficulty import LEVELS, ProbabilityDifficultyJudge, TextDifficultyJudge, parse_level, parse_score
from hfevol.backends.base import Backend, GenerationRequest, GenerationResult
from hfevol.errors import ConfigError


@pytest.mark.parametrize(
    ("reply", "level"),
    [
        ("hard", "hard"), ("Very Hard.", "very hard"), ("**medium**", "medium"), ("Difficulty: easy", "easy"), ("very easy", "very easy"),
        ("VERY-EASY", "very easy"), ('{"intent": "easy arithmetic", "difficulty": "very hard"}', "very hard"),
        ("The request is moderate.", "medium"), ("difficult", "hard"), ("  hard\n", "hard"),
        ("easy or hard", None), ("not sure", None), ("", None), (None, None), ("It is uneasy.", None), ("medium-hard", None),
    ],
)  # fmt: skip
def test_parse_level(reply: str | None, level: str | None) -> None:
    assert parse_level(reply) == level


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("72", 72.0), ("Score: 65.", 65.0), ("**40**/100", 40.0), ("I'd rate it 55 out of 100", 55.0), ("On a 0 to 100 scale: 30", 30.0),
        ("0-100: 12.5", 12.5), ("0", 0.0), ("100", 100.0), ("150", math.nan), ("-5", math.nan), ("no idea", math.nan), ("", math.nan), (None, math.nan),
    ],
)  # fmt: skip
def test_parse_score(reply: str | None, score: float) -> None:
    got = parse_score(reply)
    assert (math.isnan(got) and math.isnan(score)) or got == score


@dataclass
class Replies(Backend):
    """A judge model whose replies are given, in order; ``None`` is a failed generation."""

    replies: Sequence[str | None] = ()
    kind = "replies"

    def describe(self) -> dict[str, Any]:
        return {"backend": self.kind}

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if getattr(self, "_given", None) is None:
            self._given, self.prompts = 0, []
        out = []
        for r in requests:
            text = self.replies[self._given % len(self.replies)]
            self._given += 1
            self.prompts.append(r.messages[-1][1])
            out.append(GenerationResult.failure("boom") if text is None else GenerationResult(text=text, finish_reason="stop"))
        return out


def test_text_judge_counts_every_unread_reply() -> None:
    backend = Replies(replies=["hard", "hmm", None, "Very easy.", "easy or hard"])
    reading = TextDifficultyJudge(backend=backend, questions=("level",)).judge(["q1", "q2", "q3", "q4", "q5"], batch_size=2, progress=False)
    assert reading.columns["difficulty_level"] == ["hard", None, None, "very easy", None]
    assert reading.unparsed == {"level": 2} and reading.failed == {"level": 1}
    assert reading.examples["level"] == ["hmm", "easy or hard"]
    assert "Request:\nq1" in backend.prompts[0] and "very easy, easy, medium, hard, very hard" in backend.prompts[0]
    scores = TextDifficultyJudge(backend=Replies(replies=["Score: 80", "lots"]), questions=("score",)).judge(["a", "b", "c"], progress=False)
    assert scores.columns["difficulty_score"] == [80.0, None, 80.0] and scores.unparsed == {"score": 1}
    with pytest.raises(ConfigError, match="difficulty questions"):
        TextDifficultyJudge(backend=backend, questions=("beauty",))


def _reply_log_prob(model: Any, tokenizer: Any, user: str, reply: str) -> float:
    """log P(reply + end-of-turn | user turn) by one plain forward pass over the rendered chat (one token per character)."""
    import torch

    prompt = tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([{"role": "user", "content": user}, {"role": "assistant", "content": reply}], tokenize=False)
    ids = tokenizer(full, add_special_tokens=False).input_ids
    start = len(tokenizer(prompt, add_special_tokens=False).input_ids)
    with torch.no_grad():
        logp = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    return sum(logp[t - 1, ids[t]].item() for t in range(start, start + len(reply) + 1))


def test_probability_judge_matches_a_plain_forward_pass(tmp_path: Path) -> None:
    from _tiny_lm import save_tiny_model

    from hfevol import prompts
    from hfevol.models import load_model

    folder = str(save_tiny_model(tmp_path / "judge", context=1024))
    instructions = ["Say hi.", "Prove that there are infinitely many primes.", "Add 2 and 3."]
    reading = ProbabilityDifficultyJudge(model=folder, device="cpu", batch_size=4).judge(instructions, batch_size=2, progress=False)
    loaded = load_model(folder, device="cpu")
    for q, expected, level in zip(instructions, reading.columns["difficulty_expected"], reading.columns["difficulty_level"]):
        user = prompts.render("analysis/difficulty_level", instruction=q)
        lps = [_reply_log_prob(loaded.model, loaded.tokenizer, user, label) for label in LEVELS]
        weights = [math.exp(lp - max(lps)) for lp in lps]
        assert expected == pytest.approx(sum((k + 1) * w for k, w in enumerate(weights)) / sum(weights), rel=1e-5)
        assert level == LEVELS[max(range(5), key=lambda k: lps[k])]
        assert 1.0 <= expected <= 5.0
    assert reading.unparsed == {"level": 0}
