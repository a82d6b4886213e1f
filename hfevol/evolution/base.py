"""What every instruction-evolution transform shares: the row's position and seed, unusable rows, statuses."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Literal

from ..backends.base import Backend, GenerationRequest, GenerationResult, SamplingParams
from ..backends.local import TransformersBackend
from ..errors import ConfigError
from ..seeding import row_seed, text_key
from ..top1 import check_k, measurement
from ..top1 import features as top1_features
from ..top1 import row_columns as top1_row
from ..transform import Batch, GenerationTransform, Prepared, outcome
from ..validation import check_int, text_problem

OUTPUT_COLUMNS: tuple[str, ...] = (
    "evolved_instruction",
    "parent_instruction",
    "evol_operation",
    "evol_round",
    "evol_seed",
    "evol_status",
    "evol_reason",
)


@dataclass
class Evolver(GenerationTransform):
    """Base of the evolution transforms (:class:`EvolInstruct`, :class:`AutoEvolInstruct`).

    A subclass says which prompt a row gets (:meth:`build_prompt`) and how to read the
    model's reply (:meth:`read_reply`); this class handles positions, seeds, unusable rows
    and statuses.

    A row's *position* ``i`` drives the operation rotation and the seed. It is, in order of
    preference, the value of ``position_column`` (set by :func:`evolve_rounds` to the seed
    row's index, so that a row keeps its place in later rounds), the index ``datasets``
    passes with ``with_indices=True``, or a stable hash of the instruction text.
    """

    backend: Backend = field(default_factory=TransformersBackend)
    round: int = 1
    sampling: SamplingParams = field(default_factory=SamplingParams)
    seed: int = 0
    instruction_column: str = "instruction"
    on_invalid: Literal["mark", "raise"] = "mark"
    position_column: str | None = None
    record_top1: bool = False
    """Also record the evolver's top-1 token probabilities from the evolution call (columns
    ``top1_mean_k``, ``top1_mean_all``, ``top1_positions``; see :mod:`hfevol.top1`)."""
    top1_k: int = 5
    """Leading positions averaged in ``top1_mean_k`` (5, as the paper's code)."""

    stage = "evolve"
    """Name of the stage in metadata and in the seed derivation."""

    def __post_init__(self) -> None:
        check_int("round", self.round, minimum=1)
        if not isinstance(self.record_top1, bool):
            raise ConfigError(f"record_top1={self.record_top1!r} must be True or False")
        check_k(self.top1_k)
        self.check_settings()

    # -- what subclasses provide ---------------------------------------------------------

    @abc.abstractmethod
    def operation(self, position: int) -> str:
        """The name of the operation the row at ``position`` gets."""

    @abc.abstractmethod
    def build_prompt(self, instruction: str, operation: str) -> str:
        """The prompt that applies ``operation`` to ``instruction``."""

    @abc.abstractmethod
    def read_reply(self, text: str, out: Batch, row: int) -> tuple[str | None, str | None]:
        """Extract the evolved instruction from the reply; return it and a parse problem (or None).

        It may fill extra output columns of ``row``.
        """

    def extra_features(self) -> dict[str, Any]:
        """Types of the columns a subclass adds to :data:`OUTPUT_COLUMNS`."""
        return {}

    def stage_metadata(self) -> dict[str, Any]:
        """Subclass-specific entries of :meth:`metadata`."""
        return {}

    # -- shared machinery ----------------------------------------------------------------

    def input_columns(self) -> tuple[str, ...]:
        return (self.instruction_column,) if self.position_column is None else (self.instruction_column, self.position_column)

    def stage_settings(self) -> dict[str, Any]:
        top1 = {"top1": measurement(self.backend, self.sampling, self.top1_k)} if self.record_top1 else {}
        return {"round": self.round, **self.stage_metadata(), **top1}

    def output_features(self) -> dict[str, Any]:
        from datasets import Value

        types = {c: Value("string") for c in OUTPUT_COLUMNS}
        types["evol_round"] = Value("int64")
        types["evol_seed"] = Value("int64")
        return {**types, **self.extra_features(), **(top1_features() if self.record_top1 else {})}

    def prepare(self, batch: Batch, indices: list[int] | None) -> Prepared:
        self.check_columns(batch)
        texts = batch[self.instruction_column]
        prepared = self.start(len(texts))
        out = prepared.out
        for j, text in enumerate(texts):
            if self.position_column is not None:
                position = int(batch[self.position_column][j])
            else:
                position = indices[j] if indices is not None else text_key(str(text))
            seed = row_seed(self.seed, self.stage, self.round, position)
            op = self.operation(position)
            out["evol_operation"][j] = op
            out["evol_round"][j] = self.round
            out["evol_seed"][j] = seed
            problem = text_problem(text)
            if problem is not None:
                reason = self.invalid_reason(j, indices, self.instruction_column, problem)
                out["evol_status"][j] = "invalid_input"
                out["evol_reason"][j] = reason
                continue
            out["parent_instruction"][j] = text
            prepared.rows.append(j)
            prompt = self.build_prompt(text, op)
            prepared.requests.append(GenerationRequest.chat(prompt, params=self.sampling, seed=seed, top1=self.record_top1))
        return prepared

    def apply(self, out: Batch, row: int, result: GenerationResult) -> None:
        text, problem = None, None
        if result.ok and result.text and result.text.strip():
            text, problem = self.read_reply(result.text, out, row)
        status, reason = outcome(result, text, self.sampling.max_new_tokens, problem)
        out["evolved_instruction"][row] = text or None
        out["evol_status"][row] = status
        out["evol_reason"][row] = reason
        if self.record_top1:  # measured on whatever the evolver wrote, whether or not the row is usable
            for column, value in top1_row(result.top1 if result.ok else None, self.top1_k).items():
                out[column][row] = value

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        if not self.record_top1:  # off: the fingerprint stays what it was before these settings existed
            state.pop("record_top1", None)
            state.pop("top1_k", None)
        return state


def clean_reply(text: str | None) -> str:
    """Trim whitespace and quotes that wrap the whole answer."""
    text = (text or "").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text
