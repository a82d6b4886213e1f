"""Rewards of (instruction, response) pairs: a classifier reward model, or an LLM judge.

Both implement :class:`Reward`: ``score(instructions, responses)`` returns one float per
pair (NaN where the judge's reply held no rating) and ``describe()`` says which reward was
used; the CAR report records it.

- :class:`ClassifierReward`: a transformers ``AutoModelForSequenceClassification`` reward
  model (the paper uses ArmoRM-Llama3-8B and Skywork reward models). Each pair is the
  user and assistant turns of the reward model's own chat template; the score is the
  model's output logit. A model with several outputs needs ``reward_head`` (the index of
  the output to use): hfevol does not guess which one is the reward.
- :class:`JudgeReward`: any :class:`~hfevol.backends.Backend` rates each pair from 1 to 10
  with the prompt ``prompts/car/judge.jinja`` (greedy decoding). :func:`parse_rating`
  reads the reply.
- :class:`~hfevol.car.judge_probs.ProbabilityJudgeReward` (in :mod:`.judge_probs`): the same
  question to a local judge, read from its probabilities: the expected rating.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import prompts
from ..backends.base import Backend, GenerationRequest, SamplingParams
from ..errors import ConfigError, ModelLoadError, ModelNotFoundError
from ..extras import require_local
from ..validation import check_int

JUDGE_TEMPLATE = "car/judge"
JUDGE_SCALE = (1.0, 10.0)
JUDGE_SAMPLING = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=32)


class Reward(Protocol):
    def describe(self) -> dict[str, Any]:
        """A JSON-safe identity of the reward (kind, model, head or prompt version)."""

    def score(self, instructions: Sequence[str], responses: Sequence[str]) -> list[float]:
        """One reward per pair, in order; NaN where none could be read."""


@dataclass
class ClassifierReward:
    """A sequence-classification reward model, scoring pairs through its chat template.

    Args:
        model: a local folder or a cached Hub id of an ``AutoModelForSequenceClassification``
            model whose tokenizer has a chat template.
        reward_head: which output is the reward. ``None`` (the default) accepts only a
            model with exactly one output; a model with several (a multi-objective reward
            model, or a classifier with ``num_labels > 1``) needs the index of the one to use.
        batch_size: pairs per forward pass.
        max_length: pairs longer than this many tokens keep their first ``max_length``
            (default: the model's context).
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"``.

    Raises (on first use):
        ModelNotFoundError, ModelLoadError: the model cannot be found or is not a sequence classifier.
        ConfigError: several outputs and no ``reward_head``, a head out of range, or no chat template.
    """

    model: str
    reward_head: int | None = None
    batch_size: int = 8
    max_length: int | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        check_int("batch_size", self.batch_size)
        if self.reward_head is not None:
            check_int("reward_head", self.reward_head, minimum=0)
        require_local(f"ClassifierReward(model={self.model!r})", self.model)

    def _load(self) -> tuple[Any, Any]:
        if getattr(self, "_loaded", None) is not None:
            return self._loaded
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model)
            model = AutoModelForSequenceClassification.from_pretrained(self.model)
        except OSError as exc:
            raise ModelNotFoundError(
                f"cannot find reward model {self.model!r}: {str(exc).splitlines()[0]}",
                hint="give a local folder written by save_pretrained(), or a Hub id in the local cache (the Hub is offline).",
            ) from exc
        except ValueError as exc:
            raise ModelLoadError(f"reward model {self.model!r} does not load as a sequence classifier: {str(exc).splitlines()[0]}") from exc
        outputs = int(model.config.num_labels)
        labels = [str(model.config.id2label.get(i, i)) for i in range(outputs)] if getattr(model.config, "id2label", None) else []
        if self.reward_head is None and outputs != 1:
            raise ConfigError(
                f"reward model {self.model!r} has {outputs} outputs ({', '.join(labels)}), and hfevol does not guess which one is the reward",
                hint="choose one with reward_head=K (--reward-head K), K counted from 0 in that order.",
            )
        if self.reward_head is not None and self.reward_head >= outputs:
            raise ConfigError(f"reward_head={self.reward_head} is out of range: reward model {self.model!r} has {outputs} output(s) ({', '.join(labels)})")
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                f"reward model {self.model!r} has no chat template, so the pairs cannot be formatted as it was trained",
                hint="use a reward model that ships one, or set tokenizer.chat_template in a local copy.",
            )
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        device = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device
        model.to(device).eval()
        self._loaded: tuple[Any, Any] = (model, tokenizer)
        self._labels = labels
        return self._loaded

    def describe(self) -> dict[str, Any]:
        self._load()
        head = self.reward_head or 0
        return {"kind": "classifier", "model": self.model, "reward_head": head, "head_label": self._labels[head] if self._labels else None}

    def render(self, instruction: str, response: str) -> str:
        """The text the reward model reads for one pair: its chat template with both turns."""
        _, tokenizer = self._load()
        messages = [{"role": "user", "content": instruction}, {"role": "assistant", "content": response}]
        return tokenizer.apply_chat_template(messages, tokenize=False)

    def score(self, instructions: Sequence[str], responses: Sequence[str]) -> list[float]:
        import torch

        model, tokenizer = self._load()
        texts = [self.render(q, a) for q, a in zip(instructions, responses, strict=True)]
        limit = self.max_length or getattr(model.config, "max_position_embeddings", None)
        tokenizer.padding_side = "right"
        scores: list[float] = []
        head = self.reward_head or 0
        with torch.inference_mode():
            for lo in range(0, len(texts), self.batch_size):
                enc = tokenizer(
                    texts[lo : lo + self.batch_size],
                    return_tensors="pt",
                    padding=True,
                    truncation=limit is not None,
                    max_length=limit,
                    add_special_tokens=False,
                )
                logits = model(**enc.to(model.device)).logits.float()
                scores.extend(logits[:, head].tolist())
        return scores


_RATING = re.compile(r"(?<![\d.])(?<!of )(?<!to )(?<!/)(?<!/ )(\d+(?:\.\d+)?)(?:\s*(?:/|out of)\s*10(?![\d.]))?", re.IGNORECASE)


def parse_rating(text: str | None, scale: tuple[float, float] = JUDGE_SCALE) -> float:
    """The rating in a judge's reply: the first number on the scale, NaN if there is none.

    ``"Rating: 7"``, ``"**8**/10"``, ``"7 out of 10"`` and ``"I'd say 6.5."`` all parse;
    numbers off the scale (``"0"``, ``"42"``) and the scale itself (``"out of 10"``,
    ``"/10"``, ``"1 to 10"``) are skipped, so ``"Out of 10, I give 3"`` reads 3.
    """
    if not text:
        return math.nan
    low, high = scale
    for match in _RATING.finditer(text):
        value = float(match.group(1))
        if low <= value <= high:
            return value
    return math.nan


@dataclass
class JudgeReward:
    """An LLM judge as the reward: ``backend`` rates each pair from 1 to 10.

    The prompt is ``prompts/car/judge.jinja`` (our wording), sent as one user turn through
    the backend's chat template, decoded greedily (:data:`JUDGE_SAMPLING`). A reply with no
    rating on the scale gives NaN; the CAR report counts those per generator.
    """

    backend: Backend
    sampling: SamplingParams = field(default=JUDGE_SAMPLING)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "judge",
            "backend": self.backend.describe(),
            "prompt": JUDGE_TEMPLATE,
            "prompt_version": prompts.version(JUDGE_TEMPLATE),
            "scale": list(JUDGE_SCALE),
        }

    def score(self, instructions: Sequence[str], responses: Sequence[str]) -> list[float]:
        requests = [
            GenerationRequest.chat(prompts.render(JUDGE_TEMPLATE, instruction=q, response=a), params=self.sampling)
            for q, a in zip(instructions, responses, strict=True)
        ]
        results = self.backend.generate(requests) if requests else []
        return [parse_rating(r.text) if r.ok else math.nan for r in results]
