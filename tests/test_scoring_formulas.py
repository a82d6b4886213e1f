"""IFD and IC-IFD on made-up losses, checked by hand."""

from __future__ import annotations

import math

import pytest

from hfevol.errors import ConfigError
from hfevol.scoring import SpanLoss, ic_ifd, ifd, row_scores
from hfevol.scoring.ifd import check_forms


def test_forms_by_hand():
    # L(Q) = 0.5, L(A|Q) = 2, L(A) = 4
    assert ifd(2.0, 4.0) == (0.5, None)
    assert ifd(2.0, 4.0, "ppl_ratio")[0] == pytest.approx(math.exp(-2.0))
    assert ic_ifd(0.5, 2.0, 4.0) == (1.0, None)  # 2 / (0.5 * 4)
    assert ic_ifd(0.5, 2.0, 4.0, "multiplicative") == (0.25, None)  # 2 * 0.5 / 4


def test_ic_ifd_divides_ifd_by_the_instruction_loss_and_the_paper_numbers_fit_the_loss_reading():
    # the paper's Alpaca round-3 SLM means: IFD 0.8304, IC-IFD 0.3589 -> mean L(Q) about 2.3 nats,
    # a plausible instruction loss; with a perplexity it would be about 10
    for loss_q in (0.7, 2.31, 5.0):
        value, _ = ic_ifd(loss_q, 1.6608, 2.0)
        assert value == pytest.approx(ifd(1.6608, 2.0)[0] / loss_q)


def test_row_scores_from_span_sums_and_counts():
    # L(Q) = 3/2, L(A|Q) = 6/4, L(A) = 10/5
    scores = row_scores(SpanLoss(3.0, 2), SpanLoss(6.0, 4), SpanLoss(10.0, 5))
    assert (scores.loss_q, scores.loss_a_given_q, scores.loss_a) == (1.5, 1.5, 2.0)
    assert scores.ifd == 0.75
    assert scores.ic_ifd == 0.5  # 1.5 / (1.5 * 2)
    assert scores.reasons == ()


def test_undefined_cases_are_nan_with_a_reason_never_an_exception():
    empty_q = row_scores(SpanLoss(0.0, 0), SpanLoss(6.0, 4), SpanLoss(10.0, 5))
    assert math.isnan(empty_q.loss_q) and math.isnan(empty_q.ic_ifd)
    assert empty_q.ifd == 0.75  # IFD does not need L(Q)
    assert empty_q.reasons == ("L(Q) has no scored tokens",)

    zero_a = row_scores(SpanLoss(3.0, 2), SpanLoss(6.0, 4), SpanLoss(0.0, 5))
    assert math.isnan(zero_a.ifd) and math.isnan(zero_a.ic_ifd)
    assert zero_a.reasons == ("L(A) is zero",)

    zero_q = row_scores(SpanLoss(0.0, 2), SpanLoss(6.0, 4), SpanLoss(10.0, 5))
    assert math.isnan(zero_q.ic_ifd) and zero_q.reasons == ("L(Q) is zero",)
    # the multiplicative form and the perplexity ratio are defined there
    zero_q_mult = row_scores(SpanLoss(0.0, 2), SpanLoss(6.0, 4), SpanLoss(10.0, 5), ic_ifd_form="multiplicative")
    assert zero_q_mult.ic_ifd == 0.0 and zero_q_mult.reasons == ()
    zero_a_ppl = row_scores(SpanLoss(3.0, 2), SpanLoss(6.0, 4), SpanLoss(0.0, 5), ifd_form="ppl_ratio")
    assert zero_a_ppl.ifd == pytest.approx(math.exp(1.5))

    infinite = row_scores(SpanLoss(3.0, 2), SpanLoss(math.inf, 4), SpanLoss(10.0, 5))
    assert math.isnan(infinite.ifd) and "L(A|Q) is not finite" in infinite.reasons


def test_unknown_forms_are_refused():
    with pytest.raises(ConfigError, match="ifd_form"):
        check_forms("perplexity", "ratio")
    with pytest.raises(ConfigError, match="ic_ifd_form"):
        check_forms("loss_ratio", "product")
