"""Summary numbers over score columns, where a missing or undefined (NaN) value is left out."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import overload


def finite(values: Iterable[float | None]) -> list[float]:
    """The values that are numbers and finite (``None``, NaN and infinities left out), as floats."""
    return [float(v) for v in values if v is not None and math.isfinite(v)]


@overload
def finite_mean(values: Iterable[float | None]) -> float | None: ...
@overload
def finite_mean(values: Iterable[float | None], empty: float) -> float: ...
def finite_mean(values: Iterable[float | None], empty: float | None = None) -> float | None:
    """The mean of the :func:`finite` values; ``empty`` (default None) when there are none."""
    kept = finite(values)
    return sum(kept) / len(kept) if kept else empty
