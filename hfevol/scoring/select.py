"""Keep the best rows by a score column: the paper's top 25% by IC-IFD, or any share or count."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

from ..errors import ConfigError, DataError, MissingColumnError

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

Top = float | int | str


@dataclass(frozen=True)
class Selection:
    """Which rows a selection keeps, and what happened to the others."""

    indices: list[int]
    """Kept rows, in dataset order."""
    total: int
    undefined: int
    """Rows whose score is None or NaN: never kept."""
    dropped_ifd_above_one: int = 0
    """Rows removed by the IFD > 1 filter before ranking."""
    eligible: int = 0
    """Rows ranked (defined score, past the filter)."""
    threshold: float | None = None
    """The lowest kept score (the highest, when ascending)."""
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "kept": len(self.indices),
            "total": self.total,
            "undefined": self.undefined,
            "dropped_ifd_above_one": self.dropped_ifd_above_one,
            "eligible": self.eligible,
            "threshold": self.threshold,
            **self.settings,
        }


def parse_top(top: Top) -> tuple[str, float]:
    """``("fraction", f)`` or ``("count", k)`` from 0.25, ``"25%"``, ``"0.25"`` or 100.

    A float in (0, 1] is a share of the rows; an integer >= 1 (or a string of one) is a
    count; a string ending in ``%`` is a percentage in (0, 100].
    """
    if isinstance(top, bool):
        raise ConfigError(f"top={top!r} must be a share, a percentage or a count")
    if isinstance(top, str):
        text = top.strip()
        match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*%", text)
        if match:
            pct = float(match.group(1))
            if not 0 < pct <= 100:
                raise ConfigError(f"top={top!r}: a percentage must be in (0, 100]")
            return "fraction", pct / 100
        try:
            top = int(text) if text.isdigit() else float(text)
        except ValueError:
            raise ConfigError(f"top={top!r} is not a share, a percentage or a count", hint="examples: 0.25, '25%', 100.") from None
    if isinstance(top, int):
        if top < 1:
            raise ConfigError(f"top={top!r}: a count must be >= 1")
        return "count", float(top)
    if isinstance(top, float):
        if not 0 < top <= 1:
            raise ConfigError(f"top={top!r}: a share must be in (0, 1]", hint="write a count as an integer (100) and a percentage as '25%'.")
        return "fraction", top
    raise ConfigError(f"top={top!r} must be a share, a percentage or a count")


def plan_selection(
    scores: Sequence[Any],
    top: Top,
    *,
    ascending: bool = False,
    ifd: Sequence[Any] | None = None,
    drop_ifd_above_one: bool = False,
) -> Selection:
    """Decide which rows to keep; see :func:`select`."""
    kind, amount = parse_top(top)
    if drop_ifd_above_one and ifd is None:
        raise ConfigError("drop_ifd_above_one needs the rows' IFD values", hint="score the data first (it adds the 'ifd' column).")
    undefined = 0
    dropped = 0
    ranked: list[tuple[float, int]] = []
    for i, value in enumerate(scores):
        if not _defined(value):
            undefined += 1
            continue
        if drop_ifd_above_one and ifd is not None and (not _defined(ifd[i]) or float(ifd[i]) > 1):
            dropped += 1
            continue
        ranked.append((float(value), i))
    eligible = len(ranked)
    keep = min(eligible, int(amount) if kind == "count" else math.floor(amount * eligible + 0.5))
    # best first; ties keep dataset order
    ranked.sort(key=lambda pair: (pair[0] if ascending else -pair[0], pair[1]))
    chosen = ranked[:keep]
    settings = {"top": top, "ascending": ascending, "drop_ifd_above_one": drop_ifd_above_one}
    return Selection(
        indices=sorted(i for _, i in chosen),
        total=len(scores),
        undefined=undefined,
        dropped_ifd_above_one=dropped,
        eligible=eligible,
        threshold=chosen[-1][0] if chosen else None,
        settings=settings,
    )


@overload
def select(
    ds: "Dataset",
    by: str = ...,
    top: Top = ...,
    *,
    ascending: bool = ...,
    drop_ifd_above_one: bool = ...,
    ifd_column: str = ...,
    return_selection: Literal[False] = ...,
) -> "Dataset": ...


@overload
def select(
    ds: "Dataset",
    by: str = ...,
    top: Top = ...,
    *,
    ascending: bool = ...,
    drop_ifd_above_one: bool = ...,
    ifd_column: str = ...,
    return_selection: Literal[True],
) -> "tuple[Dataset, Selection]": ...


@overload
def select(
    ds: "Dataset",
    by: str = ...,
    top: Top = ...,
    *,
    ascending: bool = ...,
    drop_ifd_above_one: bool = ...,
    ifd_column: str = ...,
    return_selection: bool,
) -> "Dataset | tuple[Dataset, Selection]": ...


def select(
    ds: "Dataset",
    by: str = "ic_ifd",
    top: Top = 0.25,
    *,
    ascending: bool = False,
    drop_ifd_above_one: bool = False,
    ifd_column: str = "ifd",
    return_selection: bool = False,
) -> "Dataset | tuple[Dataset, Selection]":
    """Keep the best rows of a scored dataset, in their original order.

    Args:
        ds: a dataset with the ``by`` column (``hfevol score`` / :class:`~hfevol.scoring.Score` add it).
        by: the score column; the paper keeps the top 25% by ``ic_ifd``.
        top: a share (``0.25``), a percentage (``"25%"``) or a count (``100``). A share is
            of the eligible rows and rounds half up.
        ascending: keep the lowest scores instead of the highest.
        drop_ifd_above_one: Cherry LLM's filter: first drop rows whose IFD is above 1
            (the instruction does not help the model predict the answer), or undefined.
        ifd_column: where the filter reads IFD.
        return_selection: also return the :class:`Selection` (counts, threshold).

    Rows whose score is None or NaN are never kept; they are counted in
    ``Selection.undefined`` and logged.

    Raises:
        MissingColumnError: ``by`` (or the IFD column, with the filter) is absent.
        ConfigError: a bad ``top``, or ``by`` names a column that is not numeric.
        DataError: the dataset has no rows.
    """
    check_score_column(ds, by)
    if drop_ifd_above_one:
        check_score_column(ds, ifd_column, option="ifd_column")
    if len(ds) == 0:
        raise DataError("the dataset has no rows to select from")
    selection = plan_selection(
        ds[by],
        top,
        ascending=ascending,
        ifd=ds[ifd_column] if drop_ifd_above_one else None,
        drop_ifd_above_one=drop_ifd_above_one,
    )
    if selection.undefined:
        logger.warning("%d of %d rows have no %s score and were not selected", selection.undefined, selection.total, by)
    kept = ds.select(selection.indices)
    return (kept, selection) if return_selection else kept


SCORE_COLUMNS: tuple[str, ...] = ("ifd", "ic_ifd")
"""The columns :class:`~hfevol.scoring.Score` adds that ``select`` ranks by."""


def numeric_columns(ds: "Dataset") -> list[str]:
    """The columns of ``ds`` that hold integers or floats (the ones a selection can rank by)."""
    from datasets import Value

    return [name for name, feature in ds.features.items() if isinstance(feature, Value) and feature.dtype.startswith(("int", "uint", "float", "bfloat"))]


def check_score_column(ds: "Dataset", column: str, *, option: str = "by") -> None:
    """Raise unless ``column`` is a numeric column of ``ds``; ``option`` is how the error names the setting.

    Raises:
        MissingColumnError: the column is absent. The hint lists the numeric columns, or
            says to score the data first when it has no score column.
        ConfigError: the column holds text or another non-numeric type.
    """
    numeric = numeric_columns(ds)
    choices = f"numeric columns: {', '.join(numeric)}" if numeric else "the dataset has no numeric column"
    if column not in ds.column_names:
        if any(c in ds.column_names for c in SCORE_COLUMNS):
            hint = f"{option} must name one of its {choices}."
        else:
            hint = "score the data first: `hfevol score` (or the Score transform) adds ifd and ic_ifd" + (f"; its {choices}." if numeric else ".")
        raise MissingColumnError(column, ds.column_names, hint=hint)
    if column not in numeric:
        feature = ds.features[column]
        kind = getattr(feature, "dtype", None) or type(feature).__name__
        named = f"{option} {column!r}" if option.startswith("-") else f"{option}={column!r}"
        raise ConfigError(
            f"{named} names a column of {kind} values; rows can only be ranked by a numeric score",
            hint=f"choose one of the {choices}." if numeric else "score the data first: `hfevol score` adds ifd and ic_ifd.",
        )


def _defined(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return False
    try:
        return not math.isnan(float(value))
    except (TypeError, ValueError):
        return False
