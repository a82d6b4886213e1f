"""The student's loss on a generator's responses: how compatible the responses are with it.

For each (instruction, response) pair the student reads the conversation formatted as
fine-tuning would format it: the instruction as the user turn, the response as the
assistant turn, through the student's chat template or a named one
(:mod:`hfevol.models.chat_templates`, for base students that ship none). Only the
response's tokens are scored, plus the one token that closes the assistant turn (which
fine-tuning trains as well); the instruction and the template's own tokens are context.
The texts and token spans are those of :func:`hfevol.scoring.construction.chat_sequences`
and the losses come from the batched, chunked loss core :func:`hfevol.scoring.span_losses`
(one pass per pair, plus one for the response alone, which IFD needs).

Averaging over rows (:data:`hfevol.car.metrics.LOSS_AVERAGING`): ``token`` divides the
summed loss of all response tokens by their count; ``row`` averages each row's mean.
Both are reported; the one CAR uses is named in the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, ModelError
from ..extras import require_local
from ..models.loading import EMBEDDED_MODEL, LoadedModel, load_model
from ..scoring.ifd import ifd as ifd_of_losses


@dataclass(frozen=True)
class RowLoss:
    """One pair's student losses (nats per token)."""

    total: float
    """Summed loss of the response tokens given the instruction."""
    tokens: int
    """How many tokens ``total`` sums (response plus the end-of-turn token)."""
    alone_total: float
    """Summed loss of the same response tokens after an empty user turn (for IFD)."""
    alone_tokens: int
    truncated: bool

    @property
    def mean(self) -> float:
        return self.total / self.tokens if self.tokens else math.nan

    @property
    def ifd(self) -> float:
        """``L(A|Q) / L(A)`` as Cherry LLM defines it (a ratio of mean losses)."""
        alone = self.alone_total / self.alone_tokens if self.alone_tokens else math.nan
        return ifd_of_losses(self.mean, alone)[0]


@dataclass
class _TemplateEncoder:
    """The issue-5 :class:`~hfevol.scoring.construction.Encoder`, rendering with a named chat template."""

    tokenizer: Any
    template: str

    def encode(self, texts: Sequence[str], *, special_tokens: bool) -> list[list[int]]:
        return [list(ids) for ids in self.tokenizer(list(texts), add_special_tokens=special_tokens).input_ids] if texts else []

    def render_chat(self, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, chat_template=self.template, tokenize=False, add_generation_prompt=generation_prompt)


@dataclass
class StudentLoss:
    """The student's mean token loss on responses, the instruction as context.

    Args:
        student: the model to be fine-tuned: ``"embedded"``, ``"embedded:gemma3-270m"``,
            a Hub id in the local cache, or a local folder.
        template: ``None`` formats pairs with the student's own chat template; a name
            (``"plain"``) uses hfevol's named template instead (needed for base models).
        batch_size: pairs per forward pass.
        max_length: longer pairs keep their first ``max_length`` tokens (default: the
            student's context); the rows are marked truncated.

    Raises (on first use):
        ModelNotFoundError, ModelLoadError: the student cannot be loaded (the message
            names it as the student).
        ConfigError: the student has no chat template and no ``template`` is named.
    """

    student: str = EMBEDDED_MODEL
    template: str | None = None
    batch_size: int = 8
    max_length: int | None = None
    dtype: str = "auto"
    device: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size!r} must be an integer >= 1")
        require_local(f"StudentLoss(student={self.student!r})", self.student)
        if self.template is not None:
            from ..models.chat_templates import chat_template

            chat_template(self.template)  # an unknown name fails here, before any model loads

    @property
    def loaded(self) -> LoadedModel:
        if getattr(self, "_loaded", None) is None:
            try:
                self._loaded = load_model(self.student, dtype=self.dtype, device=self.device)
            except ModelError as exc:
                raise type(exc)(f"the student model cannot be loaded: {exc.message}", hint=exc.hint) from exc
        return self._loaded

    def encoder(self) -> Any:
        """How pairs become text and tokens (the student's template or the named one)."""
        from ..scoring.construction import TokenizerEncoder

        tokenizer = self.loaded.tokenizer
        if self.template is not None:
            from ..models.chat_templates import chat_template

            return _TemplateEncoder(tokenizer, chat_template(self.template))
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                f"the student {self.student!r} has no chat template, so its fine-tuning format is unknown",
                hint="name one with template='plain' (--student-template plain).",
            )
        return TokenizerEncoder(tokenizer, model_name=f"student {self.student!r}")

    def describe(self) -> dict[str, Any]:
        return {**self.loaded.identity, "template": self.template or "the student's own chat template"}

    def sequences(self, instructions: Sequence[str], responses: Sequence[str]) -> list[tuple[Any, Any]]:
        """Per pair: (conversation with the response span, the response after an empty user turn)."""
        from ..scoring.construction import chat_sequences
        from ..scoring.losses import context_length

        pairs = chat_sequences(self.encoder(), list(instructions), list(responses))
        limit = self.max_length or context_length(self.loaded.model)
        return [(full.truncate(limit), alone.truncate(limit)) for full, alone in pairs]

    def measure(self, instructions: Sequence[str], responses: Sequence[str], *, progress: bool | str = False) -> list[RowLoss]:
        """The loss of each response given its instruction, in order."""
        from ..scoring.construction import ANSWER, ANSWER_GIVEN_QUESTION
        from ..scoring.losses import span_losses

        pairs = self.sequences(instructions, responses)
        flat = [seq for pair in pairs for seq in pair]
        tokenizer = self.loaded.tokenizer
        losses = span_losses(self.loaded.model, flat, batch_size=self.batch_size, pad_token_id=tokenizer.pad_token_id or 0, progress=progress)
        out = []
        for k, (full, alone) in enumerate(pairs):
            given, solo = losses[2 * k][ANSWER_GIVEN_QUESTION], losses[2 * k + 1][ANSWER]
            out.append(RowLoss(given.total, given.count, solo.total, solo.count, full.truncated or alone.truncated))
        return out
