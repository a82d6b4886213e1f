"""An LLM judge read from its probabilities: the expected rating, never an unreadable reply.

:class:`~hfevol.car.reward.JudgeReward` asks the judge to write a rating and parses the
reply; small judges often write something else, and the pair gets NaN. This reward asks the
same question (``prompts/car/judge.jinja``) and reads, instead of a sampled reply, how
likely each whole reply ``"Rating: k"`` is for ``k`` = 1 .. 10: the assistant turn of the
judge's chat template with that text, its end-of-turn token included. The reward is the
expected rating under those probabilities, renormalised over the ten replies:

    reward = Σ_k k · P("Rating: k") / Σ_k P("Rating: k")

Scoring whole replies, not next-token digits, works for any tokenizer (one that merges
"10" into a token, or spells " 7" with its space) and tells "1" from "10". The ten replies
of a pair share its prompt, and every sequence goes through the batched, chunked loss core
(:func:`hfevol.scoring.span_losses`). The score is always defined; ``describe()`` names the
method, so a report says which judge reading was used. A pair too long for the judge's
context gets NaN (the report counts those), since its replies would be cut off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import prompts
from ..errors import ConfigError
from ..extras import require_local
from ..models import EMBEDDED_MODEL
from .reward import JUDGE_SCALE, JUDGE_TEMPLATE

RATINGS = tuple(range(int(JUDGE_SCALE[0]), int(JUDGE_SCALE[1]) + 1))
REPLY = "Rating: {k}"
"""The reply whose probability is read for each rating (the form the judge prompt asks for)."""


@dataclass
class ProbabilityJudgeReward:
    """The expected 1-10 rating of a local judge model (see the module docstring).

    Args:
        model: ``"embedded"``, a local folder or a cached Hub id of a causal LM with a chat template.
        batch_size: sequences per forward pass (each pair makes ten).
        device, dtype: as for :func:`hfevol.load_model`.

    Raises (on first use):
        ModelNotFoundError, ModelLoadError: the model cannot be found or is not a causal LM.
        ConfigError: the model's tokenizer has no chat template.
    """

    model: str = EMBEDDED_MODEL
    batch_size: int = 16
    device: str = "auto"
    dtype: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size!r} must be an integer >= 1")
        require_local(f"ProbabilityJudgeReward(model={self.model!r})", self.model)

    def _loaded(self) -> Any:
        from ..models.loading import load_model

        return load_model(self.model, device=self.device, dtype=self.dtype)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "judge_probabilities",
            "model": self._loaded().identity,
            "prompt": JUDGE_TEMPLATE,
            "prompt_version": prompts.version(JUDGE_TEMPLATE),
            "scale": list(JUDGE_SCALE),
            "reading": f"expected rating over the replies {REPLY.format(k='k')!r}, k = {RATINGS[0]}..{RATINGS[-1]}",
        }

    def score(self, instructions: Sequence[str], responses: Sequence[str]) -> list[float]:
        from ..scoring.construction import ANSWER_GIVEN_QUESTION, TokenizerEncoder, chat_answer_sequences
        from ..scoring.losses import context_length, span_losses

        questions = [prompts.render(JUDGE_TEMPLATE, instruction=q, response=a) for q, a in zip(instructions, responses, strict=True)]
        if not questions:
            return []
        loaded = self._loaded()
        encoder = TokenizerEncoder(loaded.tokenizer, model_name=f"judge {self.model!r}")
        encoder.require_chat_template()
        replies = [REPLY.format(k=k) for k in RATINGS]
        sequences = chat_answer_sequences(encoder, [q for q in questions for _ in replies], replies * len(questions))
        limit = context_length(loaded.model)
        sequences = [s.truncate(limit) for s in sequences]
        losses = span_losses(loaded.model, sequences, batch_size=self.batch_size, pad_token_id=loaded.tokenizer.pad_token_id or 0)
        n = len(RATINGS)
        out = []
        for i in range(len(questions)):
            rows = range(i * n, (i + 1) * n)
            if any(sequences[r].truncated for r in rows):  # the pair does not fit: the reply was cut off
                out.append(math.nan)
                continue
            out.append(expected_rating([-losses[r][ANSWER_GIVEN_QUESTION].total for r in rows]))
        return out


def expected_rating(log_probs: Sequence[float], ratings: Sequence[int] = RATINGS) -> float:
    """``Σ k·p_k / Σ p_k`` for the log-probabilities of the replies rating ``k``, computed stably."""
    top = max(log_probs)
    weights = [math.exp(lp - top) for lp in log_probs]
    return math.fsum(k * w for k, w in zip(ratings, weights, strict=True)) / math.fsum(weights)
