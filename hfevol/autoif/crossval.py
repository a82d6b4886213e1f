"""AutoIF step 3: cross-validation of verifier functions against test cases, as pure rules on a verdict matrix.

For one constraint, ``verdicts[f][c]`` is what function ``f`` returned on case ``c``'s input
(``True``, ``False``, or ``None`` for an error, a timeout or a non-bool) and ``expected[c]``
the case's expected output. The rules, in order:

1. **Candidates**: the constraint needs at least ``min_functions`` functions and
   ``min_cases`` cases to be judged at all (both references check this before filtering).
2. **Cases**: a case's *agreement* is the share of functions whose verdict equals its
   expected output; it is kept when the agreement passes ``case_agreement``.
3. **Functions**: a function's *accuracy* is its share of right verdicts on the kept cases
   (0 when no case is kept); it is kept when the accuracy passes ``function_accuracy``.
4. The constraint is kept when at least one function and one case survive.

Presets (:data:`PRESETS`): ``ea`` is the Evolution-Analysis code (a case needs one agreeing
function, i.e. agreement > 0; functions at accuracy >= 0.8; at least 1 function and 1
case); ``autoif`` is the AutoIF paper (> 0.5 for cases, functions and answers), with the
original code's minimum of 3 functions and 10 cases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class Threshold:
    """``value`` in [0, 1], passed by a score ``> value`` when ``strict``, else ``>= value``."""

    value: float
    strict: bool = False

    def __post_init__(self) -> None:
        check_fraction(self.value, "threshold")

    def passes(self, score: float) -> bool:
        return score > self.value if self.strict else score >= self.value

    def __str__(self) -> str:
        return f"{'>' if self.strict else '>='} {self.value:g}"


def check_fraction(value: Any, name: str) -> float:
    """``value`` as a float, or a :class:`ConfigError` naming ``name`` when it is not a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1:
        raise ConfigError(f"{name}={value!r} must be a number between 0 and 1", hint="thresholds are shares: 0.8 means 80%.")
    return float(value)


@dataclass(frozen=True)
class CrossValRules:
    """The cross-validation and answer-filter thresholds (see the module docstring)."""

    case_agreement: Threshold
    function_accuracy: Threshold
    min_functions: int = 1
    min_cases: int = 1
    min_pass_rate: Threshold | None = None
    """An answer is kept when its pass rate (share of kept functions it passes) passes this; None keeps all."""
    min_judge_score: float = 8.0
    """With a judge, answers scoring below this are filtered (the paper drops scores < 8)."""

    def __post_init__(self) -> None:
        for name in ("min_functions", "min_cases"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be an integer >= 1")
        if not 1 <= self.min_judge_score <= 10:
            raise ConfigError(f"min_judge_score={self.min_judge_score!r} must be between 1 and 10")

    def with_options(self, **values: Any) -> "CrossValRules":
        """A copy with the given values changed; a threshold keeps its preset's comparison (``case_agreement=0.6``)."""
        changes: dict[str, Any] = {}
        for name, value in values.items():
            if value is None:
                continue
            if name in ("case_agreement", "function_accuracy", "min_pass_rate"):
                current = getattr(self, name)
                changes[name] = Threshold(check_fraction(value, name), current.strict if current is not None else False)
            else:
                changes[name] = value
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("case_agreement", "function_accuracy", "min_pass_rate"):
            value = getattr(self, name)
            out[name] = str(value) if value is not None else None
        return out


PRESETS: dict[str, CrossValRules] = {
    "ea": CrossValRules(case_agreement=Threshold(0.0, strict=True), function_accuracy=Threshold(0.8), min_functions=1, min_cases=1, min_pass_rate=None),
    "autoif": CrossValRules(
        case_agreement=Threshold(0.5, strict=True),
        function_accuracy=Threshold(0.5, strict=True),
        min_functions=3,
        min_cases=10,
        min_pass_rate=Threshold(0.5, strict=True),
    ),
}


def preset(name: str) -> CrossValRules:
    """The rules of a named preset (``ea`` or ``autoif``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown cross-validation preset {name!r}", hint=f"choose one of: {', '.join(PRESETS)}.")
    return PRESETS[name]


@dataclass(frozen=True)
class CrossValResult:
    """The outcome for one constraint."""

    case_agreement: tuple[float, ...]
    cases_kept: tuple[int, ...]
    function_accuracy: tuple[float, ...]
    functions_kept: tuple[int, ...]
    kept: bool
    reason: str | None
    """Why the constraint is not kept (None when it is)."""


def cross_validate(verdicts: Sequence[Sequence[bool | None]], expected: Sequence[bool], rules: CrossValRules) -> CrossValResult:
    """Apply ``rules`` to one constraint's verdict matrix (functions × cases). Pure: runs no code.

    Raises:
        ConfigError: a row of ``verdicts`` does not have one verdict per case.
    """
    n_f, n_c = len(verdicts), len(expected)
    for k, row in enumerate(verdicts):
        if len(row) != n_c:
            raise ConfigError(f"verdict row {k} has {len(row)} verdicts for {n_c} cases")
    if n_f < rules.min_functions or n_c < rules.min_cases:
        reason: str | None = f"{n_f} usable function(s) and {n_c} test case(s); at least {rules.min_functions} and {rules.min_cases} are needed"
        return CrossValResult((), (), (), (), False, reason)
    right = [[row[c] is not None and row[c] is expected[c] for c in range(n_c)] for row in verdicts]
    agreement = tuple(sum(right[f][c] for f in range(n_f)) / n_f for c in range(n_c))
    cases = tuple(c for c in range(n_c) if rules.case_agreement.passes(agreement[c]))
    accuracy = tuple((sum(right[f][c] for c in cases) / len(cases)) if cases else 0.0 for f in range(n_f))
    functions = tuple(f for f in range(n_f) if rules.function_accuracy.passes(accuracy[f]))
    if not cases:
        reason = f"no test case has function agreement {rules.case_agreement}"
    elif not functions:
        reason = f"no function reaches accuracy {rules.function_accuracy} on the {len(cases)} kept case(s) (best {max(accuracy):.2f})"
    else:
        reason = None
    return CrossValResult(agreement, cases, accuracy, functions, reason is None, reason)


def pass_rate(verdicts: Sequence[bool | None]) -> float | None:
    """The share of kept functions an answer passes (only a real ``True`` passes); None without functions."""
    if not verdicts:
        return None
    return sum(1 for v in verdicts if v is True) / len(verdicts)
