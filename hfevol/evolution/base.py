"""What every instruction-evolution transform shares: the row's position and seed, unusable rows, statuses."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import prompts
from ..backends.base import Backend, GenerationRequest, GenerationResult, SamplingParams
from ..backends.local import TransformersBackend
from ..errors import ConfigError, InvalidRowError
from ..seeding import row_seed, text_key
from ..top1 import COLUMNS as TOP1_COLUMNS
from ..top1 import check_k, measurement
from ..top1 import features as top1_features
from ..top1 import row_columns as top1_row
from ..transform import Batch, GenerationTransform, Prepared, outcome
from ..validation import require_columns, text_problem

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
        if not isinstance(self.round, int) or isinstance(self.round, bool) or self.round < 1:
            raise ConfigError(f"round={self.round!r} must be an integer >= 1")
        if self.on_invalid not in ("mark", "raise"):
            raise ConfigError(f"on_invalid={self.on_invalid!r} must be 'mark' or 'raise'")
        if not isinstance(self.sampling, SamplingParams):
            raise ConfigError(f"sampling must be a SamplingParams, got {type(self.sampling).__name__}")
        if not isinstance(self.record_top1, bool):
            raise ConfigError(f"record_top1={self.record_top1!r} must be True or False")
        check_k(self.top1_k)
        self._check_backend()

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

    def metadata(self) -> dict[str, Any]:
        """Everything needed to reproduce this stage, in the run record's stage shape (:class:`~hfevol.record.StageRecord`):
        backend identity, sampling, seed, prompt versions, the round and the subclass's settings."""
        from ..record import StageRecord

        return StageRecord.describe(
            self.stage,
            backend=self.backend,
            sampling=self.sampling,
            seed=self.seed,
            prompt_versions={name.split("/")[-1]: prompts.version(name) for name in self.prompt_templates()},
            round=self.round,
            **self.stage_metadata(),
            **({"top1": measurement(self.backend, self.sampling, self.top1_k)} if self.record_top1 else {}),
        )

    def output_features(self) -> dict[str, Any]:
        from datasets import Value

        types = {c: Value("string") for c in OUTPUT_COLUMNS}
        types["evol_round"] = Value("int64")
        types["evol_seed"] = Value("int64")
        return {**types, **self.extra_features(), **(top1_features() if self.record_top1 else {})}

    def _empty_out(self, n: int) -> Batch:
        return {c: [None] * n for c in (*OUTPUT_COLUMNS, *self.extra_features(), *(TOP1_COLUMNS if self.record_top1 else ()))}

    def prepare(self, batch: Batch, indices: list[int] | None) -> Prepared:
        require_columns(batch, self.instruction_column)
        if self.position_column is not None:
            require_columns(batch, self.position_column)
        texts = batch[self.instruction_column]
        out = self._empty_out(len(texts))
        prepared = Prepared(out=out, rows=[], requests=[])
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
                row = indices[j] if indices is not None else f"#{j} of this batch"
                if self.on_invalid == "raise":
                    raise InvalidRowError(row, self.instruction_column, problem, hint="fix or filter the row, or use on_invalid='mark'.")
                out["evol_status"][j] = "invalid_input"
                out["evol_reason"][j] = f"column {self.instruction_column!r}: {problem}"
                continue
            out["parent_instruction"][j] = text
            prepared.rows.append(j)
            prompt = self.build_prompt(text, op)
            prepared.requests.append(GenerationRequest.chat(prompt, params=self.sampling, seed=seed, top1=self.record_top1))
        return prepared

    def apply(self, out: Batch, row: int, result: GenerationResult) -> None:
        text, problem = None, None
        if result.ok and (result.text or "").strip():
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
