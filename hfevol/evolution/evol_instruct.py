"""Evol-Instruct as a ``datasets`` map transform."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import prompts
from ..backends.base import Backend, GenerationRequest, GenerationResult, SamplingParams
from ..backends.local import TransformersBackend
from ..errors import ConfigError, InvalidRowError
from ..seeding import row_seed, text_key
from ..transform import Batch, GenerationTransform, Prepared
from ..validation import require_columns, text_problem
from .operations import ALL_OPERATIONS, check_operations, operation_for

logger = logging.getLogger(__name__)

Status = Literal["ok", "truncated", "invalid_input", "failed"]

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
class EvolInstruct(GenerationTransform):
    """Rewrite each instruction with one Evol-Instruct operation: ``ds.map(evolve, batched=True)``.

    Against an endpoint backend, ``ds.map(evolve.acall, batched=True)`` runs the batch's
    requests concurrently.

    The operation for a row follows the paper's rotation, ``operations[(i + round) %
    len(operations)]``, where ``i`` is the row's position. ``datasets`` passes positions
    only with ``with_indices=True``; without them, ``i`` is a stable hash of the
    instruction text, so the assignment is still deterministic and balanced, but not the
    paper's exact pattern. The ``hfevol evolve`` command always passes positions.

    Each row is sampled with its own seed, derived from ``seed``, the round and ``i``,
    and stored in ``evol_seed``: the same configuration, model and data give the same
    output.

    Input columns:
        - ``instruction_column`` (default ``instruction``): the text to evolve.

    Output columns (every input column is kept unchanged):
        - ``evolved_instruction`` (str | None): the rewritten instruction; None when the row failed.
        - ``parent_instruction`` (str | None): the instruction it was evolved from.
        - ``evol_operation`` (str): the operation applied.
        - ``evol_round`` (int): the round number.
        - ``evol_seed`` (int): the row's sampling seed.
        - ``evol_status`` (str): ``ok``; ``truncated`` (the output hit ``max_new_tokens``);
          ``invalid_input`` (the instruction is None, empty or not a string); ``failed``
          (the backend returned an error).
        - ``evol_reason`` (str | None): why the status is not ``ok``.

    Raises:
        ConfigError: an unknown operation, a round below 1 or a bad option.
        MissingColumnError: the instruction column is absent.
        InvalidRowError: a row's instruction is unusable and ``on_invalid="raise"``.
    """

    backend: Backend = field(default_factory=TransformersBackend)
    operations: tuple[str, ...] = ALL_OPERATIONS
    round: int = 1
    sampling: SamplingParams = field(default_factory=SamplingParams)
    seed: int = 0
    instruction_column: str = "instruction"
    on_invalid: Literal["mark", "raise"] = "mark"

    def __post_init__(self) -> None:
        self.operations = check_operations(self.operations)
        if not isinstance(self.round, int) or isinstance(self.round, bool) or self.round < 1:
            raise ConfigError(f"round={self.round!r} must be an integer >= 1")
        if self.on_invalid not in ("mark", "raise"):
            raise ConfigError(f"on_invalid={self.on_invalid!r} must be 'mark' or 'raise'")
        self._check_backend()

    def metadata(self) -> dict[str, Any]:
        """Everything needed to reproduce this stage: backend identity, prompts, sampling, seed."""
        return {
            "stage": "evol_instruct",
            "backend": self.backend.describe(),
            "operations": list(self.operations),
            "round": self.round,
            "sampling": self.sampling.to_dict(),
            "seed": self.seed,
            "prompt_versions": {op: prompts.version(f"evol_instruct/{op}") for op in self.operations},
        }

    def prepare(self, batch: Batch, indices: list[int] | None) -> Prepared:
        require_columns(batch, self.instruction_column)
        texts = batch[self.instruction_column]
        n = len(texts)
        out: Batch = {c: [None] * n for c in OUTPUT_COLUMNS}
        prepared = Prepared(out=out, rows=[], requests=[])
        for j, text in enumerate(texts):
            position = indices[j] if indices is not None else text_key(str(text))
            op = operation_for(self.operations, position, self.round)
            seed = row_seed(self.seed, "evol_instruct", self.round, position)
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
            prompt = prompts.render(f"evol_instruct/{op}", instruction=text)
            prepared.rows.append(j)
            prepared.requests.append(GenerationRequest.chat(prompt, params=self.sampling, seed=seed))
        return prepared

    def apply(self, out: Batch, row: int, result: GenerationResult) -> None:
        text = _clean(result.text) if result.ok else None
        if not result.ok:
            status, reason = "failed", result.error
        elif not text:
            status, reason = "failed", "the model returned an empty text"
        elif result.finish_reason == "length":
            status, reason = "truncated", f"stopped at max_new_tokens={self.sampling.max_new_tokens}"
        else:
            status, reason = "ok", None
        out["evolved_instruction"][row] = text or None
        out["evol_status"][row] = status
        out["evol_reason"][row] = reason


def _clean(text: str | None) -> str:
    """Trim whitespace and quotes that wrap the whole answer."""
    text = (text or "").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text
