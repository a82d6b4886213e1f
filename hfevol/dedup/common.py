"""Checks and helpers both stages share: options in range, the columns they read, the rows' prompts."""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError, EmptyDatasetError, MissingColumnError


def check_fraction(value: Any, option: str, *, low: float = 0.0, high: float = 1.0, open_low: bool = True) -> float:
    """``value`` as a float in ``(low, high]`` (``[low, high]`` when not ``open_low``).

    Raises:
        ConfigError: not a number, or outside that range.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{option} {value!r} is not a number") from None
    too_low = number <= low if open_low else number < low
    if not math.isfinite(number) or too_low or number > high:
        bracket = "(" if open_low else "["
        raise ConfigError(f"{option} {value!r} is outside {bracket}{low:g}, {high:g}]", hint=f"give a value in {bracket}{low:g}, {high:g}].")
    return number


def check_int(value: Any, option: str, *, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``. Raises ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        span = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{option} {value!r} must be an integer {span}")
    return value


def check_prompt_columns(ds: Any, instruction_column: str, input_column: str | None, *, source: str = "the dataset") -> str | None:
    """The input column to read (None when the dataset has none), after checking the instruction column exists.

    Raises:
        MissingColumnError: no ``instruction_column``.
        EmptyDatasetError: no rows.
    """
    if instruction_column not in ds.column_names:
        raise MissingColumnError(instruction_column, ds.column_names, hint=f"name the prompt column of {source} with --instruction-column.")
    if len(ds) == 0:
        raise EmptyDatasetError(f"{source} has no rows", hint="check --dataset and --split.")
    return input_column if input_column and input_column in ds.column_names else None


def prompt_batch(batch: dict[str, list[Any]], instruction_column: str, input_column: str | None) -> list[str]:
    """The prompts (instruction + input) of a batch."""
    from .text import row_text

    inputs = batch[input_column] if input_column else [None] * len(batch[instruction_column])
    return [row_text(i, x) for i, x in zip(batch[instruction_column], inputs, strict=True)]


def prompts(ds: Any, instruction_column: str, input_column: str | None) -> list[str]:
    """Every row's prompt, in row order."""
    columns = [instruction_column, *([input_column] if input_column else [])]
    return prompt_batch(ds.select_columns(columns).to_dict(), instruction_column, input_column)


def with_columns(ds: Any, columns: list[tuple[str, list[Any], Any]]) -> Any:
    """``ds`` with ``columns`` (name, values, feature) added, replacing columns of the same name."""
    import datasets

    present = [name for name, _, _ in columns if name in ds.column_names]
    base = ds.remove_columns(present) if present else ds
    if base._indices is not None:
        base = base.flatten_indices()
    added = datasets.Dataset.from_dict({n: v for n, v, _ in columns}, features=datasets.Features({n: f for n, _, f in columns}))
    return datasets.concatenate_datasets([base, added], axis=1)
