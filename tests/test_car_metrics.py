"""CAR's formula, Spearman ρ, the β fit and the bad inputs of the metrics, on hand-made numbers."""

from __future__ import annotations

import math

import pytest

from hfevol.car.metrics import (
    GeneratorStats,
    average_ranks,
    car,
    car_table,
    check_scores,
    correlations,
    fit_beta,
    reward_offset,
    spearman,
)
from hfevol.errors import ConfigError, DataError


def stats(name: str, reward: float, loss: float, *, row_loss: float | None = None, ifd: float = 0.9, length: float = 50.0) -> GeneratorStats:
    return GeneratorStats(name, 10, reward, loss, loss if row_loss is None else row_loss, ifd, length)


def test_car_formula_by_hand() -> None:
    assert car(0.8, 1.5, 2.0) == pytest.approx(0.8 / 4.0)  # 1 + 2·1.5 = 4
    assert car(3.0, 0.0, 7.0) == 3.0  # no loss: the reward itself
    assert car(3.0, 2.0, 0.0) == 3.0  # β = 0: reward alone
    with pytest.raises(ConfigError, match="beta"):
        car(1.0, 1.0, -0.5)


def test_table_ranks_by_car_and_names_the_averaging() -> None:
    # a: 0.9/(1+2) = 0.3; b: 0.6/(1+0.5) = 0.4; c: 0.5/(1+1) = 0.25  ->  b, a, c
    table = car_table([stats("a", 0.9, 2.0, row_loss=9.0), stats("b", 0.6, 0.5), stats("c", 0.5, 1.0)], beta=1.0)
    assert [r.generator for r in table.rows] == ["b", "a", "c"]
    assert [r.rank for r in table.rows] == [1, 2, 3]
    assert table.rows[0].car == pytest.approx(0.4)
    assert table.rows[1].perplexity == pytest.approx(math.exp(2.0))
    assert table.loss_averaging == "token"
    by_row = car_table([stats("a", 0.9, 2.0, row_loss=9.0), stats("b", 0.6, 0.5)], loss_averaging="row")
    assert by_row.column("loss")["a"] == 9.0
    with pytest.raises(ConfigError, match="loss_averaging"):
        car_table([stats("a", 1, 1)], loss_averaging="sequence")  # type: ignore[arg-type]


def test_spearman_by_hand_with_ties() -> None:
    assert average_ranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # no ties: 1 - 6·Σd²/(n(n²-1)); ranks (1,2,3,4) vs (2,1,4,3): Σd² = 4  ->  1 - 24/60 = 0.6
    assert spearman([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(0.6)
    # ties: Pearson of average ranks, by hand. x ranks (1, 2.5, 2.5, 4), y ranks (1, 2, 3, 4)
    # centred: x (-1.5, 0, 0, 1.5), y (-1.5, -0.5, 0.5, 1.5): sxy = 4.5, sxx = 4.5, syy = 5
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_spearman_matches_scipy() -> None:
    import scipy.stats as stats_mod

    x = [0.3, 1.2, 1.2, 5.0, -2.0, 0.3, 7.7]
    y = [1, 9, 2, 8, 3, 3, 5]
    assert spearman(x, y) == pytest.approx(stats_mod.spearmanr(x, y).statistic)


def test_beta_fit_finds_a_known_beta() -> None:
    # Generators built so that CAR ranks them like the scores exactly when β is near 1:
    # with losses 0..4, rewards r_i = s_i·(1 + l_i) give CAR_i = s_i at β = 1, increasing in s.
    # At β = 0 CAR is the reward, ranked differently; at large β the loss dominates.
    scores = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 5.0}
    losses = {"a": 0.0, "b": 3.0, "c": 1.0, "d": 4.0, "e": 2.0}
    rewards = {g: scores[g] * (1 + losses[g]) for g in scores}
    assert spearman([rewards[g] for g in scores], list(scores.values())) < 1  # reward alone is not enough
    fit = fit_beta(rewards, losses, scores)
    assert 0.3 < fit.beta < 3.0
    assert fit.rho_in_sample == pytest.approx(1.0)
    ranks = [car(rewards[g], losses[g], fit.beta) for g in scores]
    assert spearman(ranks, list(scores.values())) == pytest.approx(1.0)
    assert len(fit.fold_betas) == 5
    assert -1.0 <= fit.rho_leave_one_out <= 1.0


def test_beta_fit_leave_one_out_is_honest() -> None:
    # Scores unrelated to anything CAR can express: the in-sample ρ is as high as the grid allows,
    # the held-out ρ must not exceed it.
    rewards = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 5.0, "f": 6.0}
    losses = {"a": 0.5, "b": 2.5, "c": 1.0, "d": 3.0, "e": 0.2, "f": 2.0}
    scores = {"a": 3.0, "b": 1.0, "c": 6.0, "d": 2.0, "e": 5.0, "f": 4.0}
    fit = fit_beta(rewards, losses, scores)
    assert fit.rho_leave_one_out <= fit.rho_in_sample
    three = fit_beta({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 2, "c": 3})
    assert math.isnan(three.rho_leave_one_out)  # each fold would have 2 generators


def test_bad_scores_are_refused() -> None:
    with pytest.raises(DataError, match="3 or more generators"):
        check_scores({"a": 1.0, "b": 2.0}, ["a", "b"])
    with pytest.raises(DataError, match="all 5.0"):
        check_scores({"a": 5.0, "b": 5.0, "c": 5.0}, ["a", "b", "c"])
    with pytest.raises(DataError, match="'z'"):
        check_scores({"a": 1.0, "b": 2.0, "z": 3.0}, ["a", "b", "c"])
    with pytest.raises(DataError, match="not a finite"):
        check_scores({"a": 1.0, "b": float("nan"), "c": 3.0}, ["a", "b", "c"])


def test_correlations_orient_each_metric() -> None:
    # perplexity: lower is better, so a student score that falls with the loss gives ρ = +1
    table = car_table([stats("a", 1.0, 1.0, length=10), stats("b", 1.0, 2.0, length=20), stats("c", 1.0, 3.0, length=30)])
    rho = correlations(table, {"a": 3.0, "b": 2.0, "c": 1.0})
    assert rho["perplexity"] == pytest.approx(1.0)
    assert rho["car"] == pytest.approx(1.0)
    assert rho["length"] == pytest.approx(-1.0)
    assert math.isnan(rho["reward"])  # constant over the generators: undefined, not an error


def test_negative_rewards_shift_or_raise() -> None:
    means = {"a": -0.5, "b": 1.0}
    assert reward_offset(means, -2.0, "shift") == 2.0  # the lowest row reward becomes 0
    assert reward_offset({"a": 0.1, "b": 1.0}, -2.0, "shift") == 0.0  # nothing negative: untouched
    with pytest.raises(DataError, match="negative.*inverts CAR"):
        reward_offset(means, -2.0, "raise")
    shifted = car_table([stats("a", -0.5, 1.0), stats("b", 1.0, 1.0)], offset=2.0)
    assert shifted.column("reward") == {"b": 3.0, "a": 1.5}
    assert shifted.reward_offset == 2.0
