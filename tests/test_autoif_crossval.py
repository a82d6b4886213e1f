"""AutoIF cross-validation rules on hand-made verdict matrices; the expected keeps are worked out by hand in comments."""

from __future__ import annotations

import pytest

from hfevol.autoif import PRESETS, CrossValRules, Threshold, cross_validate, pass_rate, preset
from hfevol.errors import ConfigError

T, F, N = True, False, None

# Five functions, ten cases (expected outputs below). Rows are functions, columns cases.
EXPECTED = [T, F, T, F, T, F, T, F, T, F]
MATRIX = [
    [T, F, T, F, T, F, T, F, T, F],  # f0: right on all 10
    [T, F, T, F, T, F, T, F, F, T],  # f1: wrong on c8, c9
    [T, T, T, T, T, T, T, T, T, T],  # f2: always True: right on the 5 positives only
    [N, N, N, N, N, N, N, N, N, N],  # f3: errors everywhere (a timeout, an exception)
    [F, F, T, F, T, F, F, T, T, T],  # f4: right on c1 c2 c3 c4 c5 c8
]
# Agreement per case (share of the 5 functions right on it):
#   c0: f0 f1 f2          = 3/5 = 0.6     c5: f0 f1 f4          = 0.6
#   c1: f0 f1 f4          = 0.6           c6: f0 f1 f2          = 0.6
#   c2: f0 f1 f2 f4       = 0.8           c7: f0 f1             = 0.4
#   c3: f0 f1 f4          = 0.6           c8: f0 f2 f4          = 0.6
#   c4: f0 f1 f2 f4       = 0.8           c9: f0                = 0.2


def test_ea_preset_by_hand():
    r = cross_validate(MATRIX, EXPECTED, PRESETS["ea"])
    assert r.case_agreement == pytest.approx((0.6, 0.6, 0.8, 0.6, 0.8, 0.6, 0.6, 0.4, 0.6, 0.2))
    # ea: a case needs one agreeing function (agreement > 0): all ten are kept.
    assert r.cases_kept == tuple(range(10))
    # accuracy on all ten: f0 10/10, f1 8/10, f2 5/10, f3 0, f4 6/10; kept at >= 0.8: f0, f1.
    assert r.function_accuracy == pytest.approx((1.0, 0.8, 0.5, 0.0, 0.6))
    assert r.functions_kept == (0, 1)
    assert r.kept and r.reason is None


def test_autoif_preset_by_hand():
    r = cross_validate(MATRIX, EXPECTED, PRESETS["autoif"])
    # autoif: a case needs agreement > 0.5: c7 (0.4) and c9 (0.2) go; eight are kept.
    assert r.cases_kept == (0, 1, 2, 3, 4, 5, 6, 8)
    # accuracy on those eight: f0 8/8; f1 7/8 (wrong on c8); f2 c0 c2 c4 c6 c8 = 5/8;
    # f3 0; f4 c1 c2 c3 c4 c5 c8 = 6/8. Kept at > 0.5: f0, f1, f2, f4.
    assert r.function_accuracy == pytest.approx((1.0, 7 / 8, 5 / 8, 0.0, 6 / 8))
    assert r.functions_kept == (0, 1, 2, 4)
    assert r.kept


def test_autoif_minimums_are_checked_on_the_candidates():
    # the same functions on the first nine cases only: fewer than 10 cases, so not judged under autoif
    nine = [row[:9] for row in MATRIX]
    r = cross_validate(nine, EXPECTED[:9], PRESETS["autoif"])
    assert not r.kept and r.cases_kept == () and r.functions_kept == ()
    assert r.reason == "5 usable function(s) and 9 test case(s); at least 3 and 10 are needed"
    # two functions are too few under autoif, enough under ea
    two = [MATRIX[0], MATRIX[2]]
    assert not cross_validate(two, EXPECTED, PRESETS["autoif"]).kept
    r = cross_validate(two, EXPECTED, PRESETS["ea"])
    # ea on f0 and the always-True f2: every case has f0 agreeing, so all are kept; f0 1.0, f2 0.5
    assert r.kept and r.functions_kept == (0,) and r.function_accuracy == pytest.approx((1.0, 0.5))


def test_the_threshold_comparison_matters_at_the_boundary():
    # two functions, two cases: f0 right on both, f1 right on c0 only. Agreement c0 = 1.0, c1 = 0.5.
    matrix, expected = [[T, F], [T, T]], [T, F]
    strict = CrossValRules(case_agreement=Threshold(0.5, strict=True), function_accuracy=Threshold(0.5, strict=True))
    loose = CrossValRules(case_agreement=Threshold(0.5), function_accuracy=Threshold(0.5))
    s, lo = cross_validate(matrix, expected, strict), cross_validate(matrix, expected, loose)
    # strict: c1 (0.5) is dropped; on c0 alone both functions score 1.0
    assert s.cases_kept == (0,) and s.functions_kept == (0, 1)
    # loose: both cases kept; f1 scores 0.5 and still passes >= 0.5
    assert lo.cases_kept == (0, 1) and lo.function_accuracy == pytest.approx((1.0, 0.5)) and lo.functions_kept == (0, 1)


def test_a_lone_function_cannot_vouch_for_nothing():
    # one function that errors on every case: no case has an agreeing function
    r = cross_validate([[N, N]], [T, F], PRESETS["ea"])
    assert not r.kept and r.reason == "no test case has function agreement > 0"
    # cases kept, but no function reaches 0.8: a "1 == True" style verdict is not a bool, so it counts wrong
    r = cross_validate([[T, N, N], [N, F, N]], [T, F, T], PRESETS["ea"])
    assert r.cases_kept == (0, 1) and r.function_accuracy == pytest.approx((0.5, 0.5)) and not r.kept
    assert r.reason.startswith("no function reaches accuracy >= 0.8 on the 2 kept case(s)")


def test_options_keep_the_presets_comparison_and_are_checked():
    rules = preset("autoif").with_options(function_accuracy=0.7, min_cases=2, min_pass_rate=None)
    assert rules.function_accuracy == Threshold(0.7, strict=True) and rules.min_cases == 2
    assert rules.min_pass_rate == Threshold(0.5, strict=True)  # None leaves the preset's value
    assert preset("ea").with_options(min_pass_rate=0.5).min_pass_rate == Threshold(0.5)
    for bad in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(ConfigError, match="must be a number between 0 and 1"):
            preset("ea").with_options(case_agreement=bad)
    with pytest.raises(ConfigError, match="min_functions=0 must be an integer >= 1"):
        preset("ea").with_options(min_functions=0)
    with pytest.raises(ConfigError, match="unknown cross-validation preset"):
        preset("qwen")
    with pytest.raises(ConfigError, match="verdict row 0 has 1 verdicts for 2 cases"):
        cross_validate([[T]], [T, F], PRESETS["ea"])
    assert PRESETS["ea"].to_dict()["function_accuracy"] == ">= 0.8" and PRESETS["autoif"].to_dict()["case_agreement"] == "> 0.5"


def test_pass_rate_counts_only_real_true():
    assert pass_rate([T, F, N, T]) == 0.5
    assert pass_rate([1, "True", T]) == pytest.approx(1 / 3)
    assert pass_rate([]) is None
