"""Checks on the values a transform reads, with errors that name the row and the column."""

from __future__ import annotations

from typing import Any

from .errors import ConfigError, MissingColumnError


def require_columns(columns: list[str] | dict[str, Any], *needed: str) -> None:
    """Raise :class:`MissingColumnError` for the first column in ``needed`` that is absent."""
    names = list(columns)
    for column in needed:
        if column not in names:
            raise MissingColumnError(column, names)


def text_problem(value: Any) -> str | None:
    """Why ``value`` cannot serve as an instruction or answer, or None if it can."""
    if value is None:
        return "the value is None"
    if not isinstance(value, str):
        return f"the value is a {type(value).__name__}, not a string"
    if not value.strip():
        return "the value is empty"
    return None


def check_int(name: str, value: Any, *, minimum: int = 1) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an integer (not a bool) of at least ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name}={value!r} must be an integer >= {minimum}")
