"""The Evol-Instruct operations and the paper's deterministic rotation over them."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError

DEPTH_OPERATIONS: tuple[str, ...] = ("add_constraints", "deepen", "concretize", "increase_reasoning")
"""The four in-depth operations, in the order of the paper's reference code."""

BREADTH_OPERATION = "breadth"
"""In-breadth evolution: a new, rarer prompt from the same field. Meant for general data, not math or code."""

ALL_OPERATIONS: tuple[str, ...] = DEPTH_OPERATIONS + (BREADTH_OPERATION,)


def check_operations(operations: Sequence[str]) -> tuple[str, ...]:
    """Validate a list of operation names and return it as a tuple."""
    if isinstance(operations, str):
        operations = [operations]
    ops = tuple(operations)
    if not ops:
        raise ConfigError("operations is empty", hint=f"choose from {', '.join(ALL_OPERATIONS)}.")
    for op in ops:
        if op not in ALL_OPERATIONS:
            raise ConfigError(
                f"unknown operation {op!r}",
                hint=f"known operations: {', '.join(ALL_OPERATIONS)}.",
            )
    if len(set(ops)) != len(ops):
        raise ConfigError(f"operations {list(ops)} lists an operation twice")
    return ops


def operation_for(operations: Sequence[str], position: int, round_number: int) -> str:
    """The operation row ``position`` gets in round ``round_number``: ``ops[(position + round) % len(ops)]``.

    This is the reference code's rotation: each round shifts the list by one, so a row
    meets a different operation in each round.
    """
    return operations[(position + round_number) % len(operations)]
