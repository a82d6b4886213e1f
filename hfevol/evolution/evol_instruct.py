"""Evol-Instruct as a ``datasets`` map transform."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .. import prompts
from ..transform import Batch
from .base import Evolver, clean_reply
from .operations import ALL_OPERATIONS, check_operations, operation_for

logger = logging.getLogger(__name__)


@dataclass
class EvolInstruct(Evolver):
    """Rewrite each instruction with one Evol-Instruct operation: ``ds.map(evolve, batched=True)``.

    Against an endpoint backend, ``ds.map(evolve.acall, batched=True)`` runs the batch's
    requests concurrently. Pass ``features=evolve.features_for(ds)`` to ``map`` (or use
    :func:`hfevol.transform.map_rows`) so that column types never depend on the first batch.

    The operation for a row follows the paper's rotation, ``operations[(i + round) %
    len(operations)]``, where ``i`` is the row's position (see :class:`Evolver`): with
    ``with_indices=True`` it is the row index; without it, a stable hash of the instruction
    text, so the assignment is still deterministic and balanced, but not the paper's exact
    pattern. :func:`hfevol.evolve_rounds` and ``hfevol evolve`` always use the seed row's
    index.

    Each row is sampled with its own seed, derived from ``seed``, the round and ``i``,
    and stored in ``evol_seed``: the same configuration, model and data give the same
    output.

    Input columns:
        - ``instruction_column`` (default ``instruction``): the text to evolve.
        - ``position_column`` (optional): the row's position for the rotation and the seed.

    Output columns (every input column is kept unchanged):
        - ``evolved_instruction`` (str | None): the rewritten instruction; None when the row failed.
        - ``parent_instruction`` (str | None): the instruction it was evolved from.
        - ``evol_operation`` (str): the operation applied.
        - ``evol_round`` (int): the round number.
        - ``evol_seed`` (int): the row's sampling seed.
        - ``evol_status`` (str): ``ok``; ``truncated`` (the output hit ``max_new_tokens``);
          ``invalid_input`` (the instruction is None, empty or not a string); ``failed``
          (the backend returned an error or an empty text). :class:`Elimination` may later
          set ``eliminated``.
        - ``evol_reason`` (str | None): why the status is not ``ok``.
        - with ``record_top1=True`` only: ``top1_mean_k`` and ``top1_mean_all`` (float | None), the
          evolver's mean top-1 token probability over the first ``top1_k`` and over all generated
          positions, and ``top1_positions`` (int | None); see :mod:`hfevol.top1`.

    Raises:
        ConfigError: an unknown operation, a round below 1 or a bad option.
        MissingColumnError: the instruction column is absent.
        InvalidRowError: a row's instruction is unusable and ``on_invalid="raise"``.
    """

    operations: tuple[str, ...] = ALL_OPERATIONS

    stage = "evol_instruct"

    def __post_init__(self) -> None:
        self.operations = check_operations(self.operations)
        super().__post_init__()

    def prompt_templates(self) -> tuple[str, ...]:
        return tuple(f"evol_instruct/{op}" for op in self.operations)

    def stage_metadata(self) -> dict[str, Any]:
        return {"operations": list(self.operations)}

    def operation(self, position: int) -> str:
        return operation_for(self.operations, position, self.round)

    def build_prompt(self, instruction: str, operation: str) -> str:
        return prompts.render(f"evol_instruct/{operation}", instruction=instruction)

    def read_reply(self, text: str, out: Batch, row: int) -> tuple[str | None, str | None]:
        return clean_reply(text), None
