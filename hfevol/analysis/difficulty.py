"""How difficult is an instruction? An LLM judge, read as text or from its probabilities.

Two questions, both on the instruction alone (the paper's judge ignores the input):

- the **level**, one of :data:`LEVELS` (the Magpie-style scale of the paper's Figure 2),
  ``prompts/analysis/difficulty_level.jinja``;
- a **score** from 0 to 100 (the paper's Table 13), ``prompts/analysis/difficulty_score.jinja``.

:class:`TextDifficultyJudge` asks any backend (local model or endpoint, greedy) and parses
the reply (:func:`parse_level`, :func:`parse_score`). The paper's code keeps a level only
when the whole reply is exactly one label and silently drops the rest; here a reply counts
when it names exactly one level, and every reply that does not is **counted** (the
``unparsed`` numbers of :class:`DifficultyReading`, with a few examples), never dropped
silently: its row gets None.

:class:`ProbabilityDifficultyJudge` asks a local model the level question and reads how
likely each of the five whole replies is (the core of ``hfevol car``'s ``judge-probs``):
``difficulty_expected`` = Σ_k k·P(level k) / Σ_k P(level k), with very easy = 1 … very
hard = 5, and ``difficulty_level`` the most likely label. Always defined, except for an
instruction too long for the judge's context (None, counted).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import prompts
from ..backends.base import Backend, GenerationRequest, SamplingParams
from ..errors import ConfigError
from ..models import EMBEDDED_MODEL

LEVELS: tuple[str, ...] = ("very easy", "easy", "medium", "hard", "very hard")
LEVEL_TEMPLATE = "analysis/difficulty_level"
SCORE_TEMPLATE = "analysis/difficulty_score"
SCORE_SCALE = (0.0, 100.0)
JUDGE_SAMPLING = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=48)
QUESTIONS: tuple[str, ...] = ("level", "score")
EXAMPLES = 5
"""Unparsed replies kept as examples in the reading (the rest are only counted)."""

_LEVEL = re.compile(r"\b(very[\s_-]*easy|very[\s_-]*hard|easy|medium|moderate|hard|difficult)\b", re.IGNORECASE)
_SYNONYMS = {"moderate": "medium", "difficult": "hard"}
_JSON_LEVEL = re.compile(r"""["']?(?:difficulty|level)["']?\s*[:=]\s*["']?([A-Za-z _-]+?)["']?\s*[,}\n]""", re.IGNORECASE)
_RANGE = re.compile(r"\b0\s*(?:-|–|to)\s*100\b|(?:/|out of)\s*100\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\d.])-?\d+(?:\.\d+)?(?!\.?\d)")


def _level_of(word: str) -> str:
    word = re.sub(r"[\s_-]+", " ", word.strip().lower())
    return _SYNONYMS.get(word, word)


def parse_level(text: str | None) -> str | None:
    """The level a reply names, or None when it names none or several different ones.

    ``"hard"``, ``"Very Hard."``, ``"**medium**"``, ``"Difficulty: easy"`` and
    ``{"intent": ..., "difficulty": "very hard"}`` all parse ("moderate" reads medium,
    "difficult" reads hard); ``"not sure"`` and ``"easy or hard"`` do not. A
    ``difficulty``/``level`` field, when present, decides on its own.
    """
    if not text or not text.strip():
        return None
    field_match = _JSON_LEVEL.search(text + "\n")
    if field_match:
        named = {_level_of(m.group(1)) for m in _LEVEL.finditer(field_match.group(1))}
        if len(named) == 1:
            return named.pop()
    named = {_level_of(m.group(1)) for m in _LEVEL.finditer(text)}
    return named.pop() if len(named) == 1 else None


def parse_score(text: str | None, scale: tuple[float, float] = SCORE_SCALE) -> float:
    """The first number on the 0-100 scale in a reply, NaN if there is none.

    ``"72"``, ``"Score: 65."``, ``"**40**/100"`` and ``"I'd rate it 55 out of 100"`` parse;
    the scale itself (``"0-100"``, ``"/100"``, ``"out of 100"``) and numbers off it are
    skipped, so ``"On a 0 to 100 scale: 30"`` reads 30.
    """
    if not text:
        return math.nan
    low, high = scale
    for match in _NUMBER.finditer(_RANGE.sub(" ", text)):
        value = float(match.group())
        if low <= value <= high:
            return value
    return math.nan


@dataclass
class DifficultyReading:
    """The judge's per-row columns and what could not be read."""

    columns: dict[str, list[Any]]
    """``difficulty_level`` (str or None), ``difficulty_score`` (float or None), ``difficulty_expected`` (probability judge)."""
    unparsed: dict[str, int] = field(default_factory=dict)
    """Per question: replies that named no level / no score on the scale (rows with None)."""
    failed: dict[str, int] = field(default_factory=dict)
    """Per question: generations that failed (backend error)."""
    examples: dict[str, list[str]] = field(default_factory=dict)
    """Per question: a few unparsed replies, cut to 200 characters."""


@dataclass
class TextDifficultyJudge:
    """A judge that writes its answer: any backend, greedy, one request per row and question.

    Args:
        backend: a local model or an endpoint.
        questions: ``("level", "score")`` (default), or one of them.
        sampling: decoding (default greedy, 48 new tokens).
    """

    backend: Backend
    questions: tuple[str, ...] = QUESTIONS
    sampling: SamplingParams = field(default=JUDGE_SAMPLING)

    def __post_init__(self) -> None:
        unknown = [q for q in self.questions if q not in QUESTIONS]
        if unknown or not self.questions:
            raise ConfigError(f"difficulty questions {list(self.questions)!r}: each must be one of {', '.join(QUESTIONS)}")

    def describe(self) -> dict[str, Any]:
        templates = {"level": LEVEL_TEMPLATE, "score": SCORE_TEMPLATE}
        return {
            "kind": "text_judge",
            "backend": self.backend.describe(),
            "questions": list(self.questions),
            "prompts": {q: {"template": templates[q], "version": prompts.version(templates[q])} for q in self.questions},
            "sampling": self.sampling.to_dict(),
            "levels": list(LEVELS),
            "score_scale": list(SCORE_SCALE),
        }

    def judge(self, instructions: Sequence[str], *, batch_size: int = 64, progress: bool = True) -> DifficultyReading:
        from tqdm.auto import tqdm

        reading = DifficultyReading(columns={})
        for question in self.questions:
            template, parse = (LEVEL_TEMPLATE, parse_level) if question == "level" else (SCORE_TEMPLATE, parse_score)
            values: list[Any] = []
            unparsed = failed = 0
            examples: list[str] = []
            bar = tqdm(total=len(instructions), desc=f"Difficulty ({question})", disable=not progress)
            for lo in range(0, len(instructions), batch_size):
                chunk = instructions[lo : lo + batch_size]
                requests = [GenerationRequest.chat(prompts.render(template, instruction=q), params=self.sampling) for q in chunk]
                for result in self.backend.generate(requests):
                    if not result.ok:
                        failed += 1
                        values.append(None)
                        continue
                    value = parse(result.text)
                    if value is None or (isinstance(value, float) and math.isnan(value)):
                        unparsed += 1
                        if len(examples) < EXAMPLES:
                            examples.append((result.text or "")[:200])
                        values.append(None)
                    else:
                        values.append(value)
                bar.update(len(chunk))
            bar.close()
            reading.columns[f"difficulty_{question}"] = values
            reading.unparsed[question], reading.failed[question], reading.examples[question] = unparsed, failed, examples
        return reading


@dataclass
class ProbabilityDifficultyJudge:
    """The expected level of a local judge, read from the probabilities of the five replies (module docstring).

    Args:
        model: ``"embedded"``, a local folder or a cached Hub id of a causal LM with a chat template.
        batch_size: sequences per forward pass (each row makes five).
    """

    model: str = EMBEDDED_MODEL
    batch_size: int = 16
    device: str = "auto"
    dtype: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size!r} must be an integer >= 1")

    def _loaded(self) -> Any:
        from ..models.loading import load_model

        return load_model(self.model, device=self.device, dtype=self.dtype)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "probability_judge",
            "model": self._loaded().identity,
            "questions": ["level"],
            "prompts": {"level": {"template": LEVEL_TEMPLATE, "version": prompts.version(LEVEL_TEMPLATE)}},
            "levels": list(LEVELS),
            "reading": "expected level over the five whole replies (very easy = 1 ... very hard = 5); difficulty_level is the most likely one",
        }

    def judge(self, instructions: Sequence[str], *, batch_size: int = 64, progress: bool = True) -> DifficultyReading:
        from tqdm.auto import tqdm

        from ..car.judge_probs import expected_rating, reply_log_probs

        loaded = self._loaded()
        expected: list[float | None] = []
        likeliest: list[str | None] = []
        too_long = 0
        ranks = list(range(1, len(LEVELS) + 1))
        bar = tqdm(total=len(instructions), desc="Difficulty (level probabilities)", disable=not progress)
        for lo in range(0, len(instructions), batch_size):
            chunk = instructions[lo : lo + batch_size]
            questions = [prompts.render(LEVEL_TEMPLATE, instruction=q) for q in chunk]
            for lps in reply_log_probs(loaded, questions, LEVELS, batch_size=self.batch_size, model_name=f"difficulty judge {self.model!r}"):
                if lps is None:
                    too_long += 1
                    expected.append(None)
                    likeliest.append(None)
                    continue
                expected.append(expected_rating(lps, ranks))
                likeliest.append(LEVELS[max(range(len(LEVELS)), key=lambda k: lps[k])])
            bar.update(len(chunk))
        bar.close()
        return DifficultyReading(
            columns={"difficulty_level": likeliest, "difficulty_expected": expected},
            unparsed={"level": too_long},
            failed={"level": 0},
            examples={"level": []},
        )
