"""The front end every local scorer shares: load the model once, encode, fit the context, run the loss core.

:class:`~hfevol.scoring.Score` (IFD / IC-IFD), :class:`~hfevol.car.StudentLoss` (the
student's loss on a generator's responses) and :class:`~hfevol.car.ProbabilityJudgeReward`
(a judge read from its probabilities) differ in the texts they build; how those texts become
losses is this module's :class:`ScoringModel`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ModelError
from ..models.loading import LoadedModel, load_model
from .construction import TokenizerEncoder
from .losses import SpanLoss, TokenSequence, context_length, span_losses


@dataclass
class ScoringModel:
    """A loaded causal LM that scores token sequences span by span.

    ``name`` is how errors name the model (``"model 'embedded'"``, ``"student '...'"``).
    """

    loaded: LoadedModel
    name: str

    @classmethod
    def load(cls, model: str, *, dtype: str = "auto", device: str = "auto", role: str = "model", role_in_errors: bool = False) -> "ScoringModel":
        """Load ``model`` (once per process, see :func:`~hfevol.models.load_model`).

        With ``role_in_errors``, a model that cannot be loaded is named by its role in the
        error (``"the student model cannot be loaded: ..."``).

        Raises:
            ModelNotFoundError, ModelLoadError: the model cannot be found or is not a causal LM.
        """
        try:
            loaded = load_model(model, dtype=dtype, device=device)
        except ModelError as exc:
            if not role_in_errors:
                raise
            raise type(exc)(f"the {role} model cannot be loaded: {exc.message}", hint=exc.hint) from exc
        return cls(loaded, f"{role} {model!r}")

    def encoder(self, *, chat_template: bool = False) -> TokenizerEncoder:
        """The model's tokenizer as an encoder; ``chat_template=True`` requires it to have one (ConfigError)."""
        encoder = TokenizerEncoder(self.loaded.tokenizer, model_name=self.name)
        if chat_template:
            encoder.require_chat_template()
        return encoder

    def limit(self, max_length: int | None = None) -> int | None:
        """``max_length`` capped by the model's context (None: no limit)."""
        limits = [x for x in (max_length, context_length(self.loaded.model)) if x is not None]
        return min(limits) if limits else None

    def fit(self, sequences: Sequence[TokenSequence], max_length: int | None = None) -> list[TokenSequence]:
        """Each sequence cut to :meth:`limit` (marked ``truncated`` when cut)."""
        limit = self.limit(max_length)
        return [s.truncate(limit) for s in sequences]

    def losses(self, sequences: Sequence[TokenSequence], *, batch_size: int, progress: bool | str = False) -> list[dict[str, SpanLoss]]:
        """Each sequence's span losses through the batched, chunked loss core (:func:`~hfevol.scoring.span_losses`)."""
        pad = self.loaded.tokenizer.pad_token_id
        return span_losses(self.loaded.model, list(sequences), batch_size=batch_size, pad_token_id=pad if pad is not None else 0, progress=progress)
