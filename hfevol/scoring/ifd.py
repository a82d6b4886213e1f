"""IFD and IC-IFD from three mean token losses, with every undefined case named.

The losses are means of per-token cross-entropy (nats), never perplexities:

- ``L(Q)``: the question's tokens, read left to right;
- ``L(A|Q)``: the answer's tokens after the question;
- ``L(A)``: the answer's tokens alone.

Forms (the default first):

- ``ifd_form="loss_ratio"``: ``L(A|Q) / L(A)``, as Cherry LLM (Li et al., 2023) and Hui et al. use it.
- ``ifd_form="ppl_ratio"``: ``exp(L(A|Q) - L(A))``, the perplexity ratio of Superfiltering
  (Li et al., 2024). It ranks rows differently from the loss ratio.
- ``ic_ifd_form="ratio"``: ``L(A|Q) / (L(Q) * L(A))``, the paper's IC-IFD (Hui et al., Eq. 2).
- ``ic_ifd_form="multiplicative"``: ``L(A|Q) * L(Q) / L(A)`` (= IFD × L(Q)), the product
  form that the paper's repository ranks by in its data-selection script. It rewards a
  hard instruction where Eq. 2 penalises it.

``ic_ifd`` is always built from losses; ``ifd_form`` changes only the ``ifd`` value.
Higher is better for both in the papers' use (keep the top rows).

**Undefined values.** A value that cannot be computed is ``NaN`` (never an exception),
and :func:`row_scores` says why, one reason per cause:

- ``"L(Q) has no scored tokens"`` (likewise ``L(A|Q)``, ``L(A)``): the span is empty, for
  example a one-token instruction with a tokenizer that adds no BOS token, or an answer
  truncated away;
- ``"L(A) is zero"`` / ``"L(Q) is zero"``: a zero divisor;
- ``"L(...) is not finite"``: the model produced an infinite or NaN loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError
from .losses import SpanLoss

IfdForm = Literal["loss_ratio", "ppl_ratio"]
IcIfdForm = Literal["ratio", "multiplicative"]
IFD_FORMS: tuple[str, ...] = ("loss_ratio", "ppl_ratio")
IC_IFD_FORMS: tuple[str, ...] = ("ratio", "multiplicative")


def check_forms(ifd_form: str, ic_ifd_form: str) -> None:
    """Raise :class:`ConfigError` for an unknown form."""
    if ifd_form not in IFD_FORMS:
        raise ConfigError(f"ifd_form={ifd_form!r} is not known", hint=f"choose one of {', '.join(IFD_FORMS)}.")
    if ic_ifd_form not in IC_IFD_FORMS:
        raise ConfigError(f"ic_ifd_form={ic_ifd_form!r} is not known", hint=f"choose one of {', '.join(IC_IFD_FORMS)}.")


@dataclass(frozen=True)
class RowScores:
    """One row's losses and scores; NaN where undefined, with the reasons."""

    loss_q: float
    loss_a_given_q: float
    loss_a: float
    ifd: float
    ic_ifd: float
    reasons: tuple[str, ...] = ()


def ifd(loss_a_given_q: float, loss_a: float, form: IfdForm = "loss_ratio") -> tuple[float, str | None]:
    """IFD and, when it is NaN, why."""
    if math.isnan(loss_a_given_q) or math.isnan(loss_a):
        return math.nan, None  # the missing loss carries the reason
    if form == "ppl_ratio":
        return math.exp(loss_a_given_q - loss_a), None
    if loss_a == 0:
        return math.nan, "L(A) is zero"
    return loss_a_given_q / loss_a, None


def ic_ifd(loss_q: float, loss_a_given_q: float, loss_a: float, form: IcIfdForm = "ratio") -> tuple[float, str | None]:
    """IC-IFD and, when it is NaN, why."""
    if math.isnan(loss_q) or math.isnan(loss_a_given_q) or math.isnan(loss_a):
        return math.nan, None
    if loss_a == 0:
        return math.nan, "L(A) is zero"
    if form == "multiplicative":
        return loss_a_given_q * loss_q / loss_a, None
    if loss_q == 0:
        return math.nan, "L(Q) is zero"
    return loss_a_given_q / (loss_q * loss_a), None


def row_scores(q: SpanLoss, a_given_q: SpanLoss, a: SpanLoss, *, ifd_form: IfdForm = "loss_ratio", ic_ifd_form: IcIfdForm = "ratio") -> RowScores:
    """Combine the three span losses of one row into its scores."""
    reasons: list[str] = []
    means = []
    for label, span in (("L(Q)", q), ("L(A|Q)", a_given_q), ("L(A)", a)):
        value = span.mean
        if span.count == 0:
            reasons.append(f"{label} has no scored tokens")
        elif not math.isfinite(value):
            reasons.append(f"{label} is not finite")
            value = math.nan
        means.append(value)
    loss_q, loss_aq, loss_a = means
    ifd_value, why = ifd(loss_aq, loss_a, ifd_form)
    ic_value, why_ic = ic_ifd(loss_q, loss_aq, loss_a, ic_ifd_form)
    for reason in (why, why_ic):
        if reason and reason not in reasons:
            reasons.append(reason)
    return RowScores(loss_q, loss_aq, loss_a, ifd_value, ic_value, tuple(reasons))
