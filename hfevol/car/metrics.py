"""CAR, its baselines, rankings, Spearman ρ and the β fit: plain numbers in, plain numbers out.

The Compatibility-Adjusted Reward of Xu et al. (arXiv 2411.07133) ranks response
generators for one student model without training it::

    CAR(D, θ) = r(D) / (1 + β · L(D, θ))

- ``r(D)``: the mean reward of the generator's (instruction, response) pairs;
- ``L(D, θ)``: the student's mean loss on the responses (response tokens only, the
  instruction as context); :mod:`hfevol.car.compatibility` computes it;
- ``β``: **the paper does not state the value it used.** :data:`DEFAULT_BETA` is 1.0, a
  neutral choice (a loss of 1 nat halves the reward); pass measured student scores to
  :func:`fit_beta` to choose it from data.

**Negative rewards.** A negative ``r`` inverts CAR (a higher loss would *raise* a
negative reward towards 0). :func:`reward_offset` handles this explicitly:
``negative_rewards="shift"`` (the default) adds ``-min(row rewards)`` to every reward
when any generator's mean reward is negative, so that the lowest row reward seen becomes
0 and every mean is >= 0; the offset is recorded in the report. ``"raise"`` refuses with
a hint instead. A shift changes CAR's ranking (it changes the ratio), so compare CAR
values only within one run.

**Baselines** (the paper's Table 4 compares CAR with them), each with the direction
that ranks a generator higher (:data:`DIRECTIONS`):

- ``reward``: the mean reward alone, higher is better;
- ``perplexity``: ``exp(L)`` of the student on the responses, lower is better (more
  compatible);
- ``ifd``: mean IFD computed by the student, ``L(A|Q) / L(A)`` per row, higher is better
  (Cherry LLM's reading, in which a higher IFD is a more useful sample). *The paper
  does not say which direction it ranks by*; :func:`correlations` reports ρ with the
  direction named in the table;
- ``length``: the mean response length in student tokens, higher is better.

**Spearman ρ** uses average ranks for ties and is the Pearson correlation of the ranks;
it is undefined (NaN, with a note) when a metric is constant over the generators.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..errors import ConfigError, DataError

DEFAULT_BETA = 1.0
"""β when none is given. The paper does not state its β; 1.0 is our neutral default."""

NegativeRewards = Literal["shift", "raise"]
LossAveraging = Literal["token", "row"]
LOSS_AVERAGING: tuple[str, ...] = ("token", "row")
"""``token``: total loss over all response tokens / their count (long responses weigh more).
``row``: the mean of each row's mean token loss (every row weighs the same)."""

METRICS: tuple[str, ...] = ("car", "reward", "perplexity", "ifd", "length")
DIRECTIONS: dict[str, int] = {"car": 1, "reward": 1, "perplexity": -1, "ifd": 1, "length": 1}
"""+1: a higher value ranks a generator higher; -1: a lower value does."""

DEFAULT_BETA_GRID: tuple[float, ...] = (0.0,) + tuple(round(10 ** (k / 8), 6) for k in range(-24, 25))
"""β values tried by :func:`fit_beta`: 0 and 49 log-spaced values from 0.001 to 1000."""

MIN_GENERATORS_FOR_RHO = 3


def car(reward: float, loss: float, beta: float = DEFAULT_BETA) -> float:
    """``reward / (1 + beta * loss)``."""
    check_beta(beta)
    return reward / (1.0 + beta * loss)


def check_beta(beta: float) -> None:
    if not isinstance(beta, (int, float)) or isinstance(beta, bool) or not math.isfinite(beta) or beta < 0:
        raise ConfigError(f"beta={beta!r} must be a finite number >= 0", hint="the paper does not state β; 1.0 is the default, or fit it with measured scores.")


def reward_offset(mean_rewards: Mapping[str, float], lowest_row_reward: float, policy: NegativeRewards = "shift") -> float:
    """What to add to every reward so that CAR is not inverted: 0 when no mean is negative.

    Raises:
        DataError: a mean reward is negative and ``policy="raise"``.
        ConfigError: an unknown policy.
    """
    if policy not in ("shift", "raise"):
        raise ConfigError(f"negative_rewards={policy!r} must be 'shift' or 'raise'")
    negative = sorted(name for name, value in mean_rewards.items() if value < 0)
    if not negative:
        return 0.0
    if policy == "raise":
        raise DataError(
            f"the mean reward of generator(s) {', '.join(negative)} is negative, which inverts CAR (a higher loss would raise the score)",
            hint="use negative_rewards='shift' (--negative-rewards shift) to move the lowest row reward to 0, or a reward on a non-negative scale.",
        )
    return -lowest_row_reward


@dataclass(frozen=True)
class GeneratorStats:
    """What was measured for one generator over the scored rows."""

    name: str
    rows: int
    mean_reward: float
    loss_token_mean: float
    loss_row_mean: float
    ifd: float
    """Mean over rows of the student's ``L(A|Q) / L(A)``."""
    mean_length: float
    """Mean response length in student tokens."""

    def loss(self, averaging: LossAveraging) -> float:
        return self.loss_token_mean if averaging == "token" else self.loss_row_mean


@dataclass(frozen=True)
class CarRow:
    """One generator's line in the CAR table."""

    generator: str
    rows: int
    reward: float
    """Mean reward, after the offset."""
    loss: float
    car: float
    perplexity: float
    ifd: float
    length: float
    rank: int
    """1 = the generator CAR recommends."""

    def value(self, metric: str) -> float:
        return float(getattr(self, metric))


@dataclass(frozen=True)
class CarTable:
    rows: tuple[CarRow, ...]
    beta: float
    loss_averaging: LossAveraging
    reward_offset: float

    @property
    def best(self) -> str:
        return self.rows[0].generator

    def column(self, metric: str) -> dict[str, float]:
        return {r.generator: r.value(metric) for r in self.rows}


def car_table(stats: Sequence[GeneratorStats], *, beta: float = DEFAULT_BETA, loss_averaging: LossAveraging = "token", offset: float = 0.0) -> CarTable:
    """CAR and the baselines per generator, sorted by CAR (best first; ties by name)."""
    check_beta(beta)
    if loss_averaging not in LOSS_AVERAGING:
        raise ConfigError(f"loss_averaging={loss_averaging!r} must be one of {', '.join(LOSS_AVERAGING)}")
    if not stats:
        raise DataError("no generators to compare")
    built = []
    for s in stats:
        reward = s.mean_reward + offset
        loss = s.loss(loss_averaging)
        built.append((s, reward, loss, car(reward, loss, beta)))
    built.sort(key=lambda t: (-t[3], t[0].name))
    rows = tuple(
        CarRow(s.name, s.rows, reward, loss, value, math.exp(loss), s.ifd, s.mean_length, rank) for rank, (s, reward, loss, value) in enumerate(built, start=1)
    )
    return CarTable(rows=rows, beta=float(beta), loss_averaging=loss_averaging, reward_offset=offset)


# -- Spearman ------------------------------------------------------------------------


def average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1 (smallest) to n; tied values share the mean of their ranks."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        mean_rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = mean_rank
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ with average ranks for ties; NaN when either side is constant.

    Raises:
        DataError: the sequences differ in length, hold NaN, or have fewer than 2 values.
    """
    if len(x) != len(y):
        raise DataError(f"spearman needs two sequences of the same length, got {len(x)} and {len(y)}")
    if len(x) < 2:
        raise DataError(f"spearman needs at least 2 values, got {len(x)}")
    if any(math.isnan(v) for v in (*x, *y)):
        raise DataError("spearman got a NaN value")
    rx, ry = average_ranks(x), average_ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return math.nan
    return sxy / math.sqrt(sxx * syy)


def check_scores(scores: Mapping[str, float], generators: Sequence[str], *, what: str = "measured scores") -> list[str]:
    """The generators that have a score, checked: at least 3 and not all equal.

    Raises:
        DataError: a score names an unknown generator or is not finite; fewer than 3
            generators are scored; every score is the same.
    """
    unknown = sorted(set(scores) - set(generators))
    if unknown:
        raise DataError(
            f"{what} name generator(s) {', '.join(map(repr, unknown))} that were not compared", hint=f"the generators are: {', '.join(generators)}."
        )
    bad = sorted(name for name, v in scores.items() if not isinstance(v, (int, float)) or not math.isfinite(v))
    if bad:
        raise DataError(f"{what}: the score of {', '.join(bad)} is not a finite number")
    named = [g for g in generators if g in scores]
    if len(named) < MIN_GENERATORS_FOR_RHO:
        raise DataError(
            f"Spearman ρ needs {MIN_GENERATORS_FOR_RHO} or more generators with {what}, got {len(named)} ({', '.join(named) or 'none'})",
            hint="compare at least 3 generators and give a score for each, or leave the scores out.",
        )
    if len({scores[g] for g in named}) == 1:
        raise DataError(f"the {what} are all {scores[named[0]]!r}, so no ranking can be compared with them", hint="give scores that differ between generators.")
    return named


def correlations(table: CarTable, scores: Mapping[str, float]) -> dict[str, float]:
    """Spearman ρ between each metric (oriented by :data:`DIRECTIONS`) and the measured scores."""
    named = check_scores(scores, [r.generator for r in table.rows])
    measured = [scores[g] for g in named]
    out = {}
    for metric in METRICS:
        column = table.column(metric)
        out[metric] = spearman([DIRECTIONS[metric] * column[g] for g in named], measured)
    return out


# -- β fit ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BetaFit:
    """The β that ranks generators most like the measured scores, and how well that generalises."""

    beta: float
    """Fitted on every scored generator."""
    rho_in_sample: float
    """ρ at that β on the same generators: optimistic, the β was chosen for it."""
    rho_leave_one_out: float
    """Each generator ranked among all by CAR with a β fitted without it; ρ of those held-out ranks with the scores. NaN with fewer than 4 generators."""
    fold_betas: tuple[float, ...] = field(default=())
    """The β of each leave-one-out fold, in generator order."""


def _best_beta(rewards: Sequence[float], losses: Sequence[float], scores: Sequence[float], grid: Sequence[float]) -> tuple[float, float]:
    """The grid β with the highest ρ (the median of the best ones, as ρ is flat between rank swaps)."""
    rhos = []
    for beta in grid:
        rho = spearman([car(r, loss, beta) for r, loss in zip(rewards, losses)], scores)
        rhos.append(-math.inf if math.isnan(rho) else rho)
    top = max(rhos)
    best = [b for b, rho in zip(grid, rhos) if rho == top]
    return best[(len(best) - 1) // 2], top


def fit_beta(
    rewards: Mapping[str, float],
    losses: Mapping[str, float],
    scores: Mapping[str, float],
    *,
    grid: Sequence[float] = DEFAULT_BETA_GRID,
) -> BetaFit:
    """Choose β by maximising Spearman ρ between CAR and measured student scores.

    ``rewards`` must already be offset (no negative mean). Leave-one-out: for each
    scored generator, β is fitted on the others (needs 3 of them), the held-out generator
    is ranked among all scored ones by CAR at that β, and ρ is taken between those
    held-out ranks and the scores.

    Raises:
        DataError: fewer than 3 scored generators, constant scores, a negative reward.
        ConfigError: an empty or negative grid.
    """
    if not grid or any(not math.isfinite(b) or b < 0 for b in grid):
        raise ConfigError("the β grid must be a non-empty list of finite numbers >= 0")
    named = check_scores(scores, list(rewards))
    negative = [g for g in named if rewards[g] < 0]
    if negative:
        raise DataError(f"cannot fit β: the reward of {', '.join(negative)} is negative", hint="offset the rewards first (reward_offset).")
    r = [rewards[g] for g in named]
    lo = [losses[g] for g in named]
    s = [scores[g] for g in named]
    beta, rho = _best_beta(r, lo, s, grid)
    if len(named) < MIN_GENERATORS_FOR_RHO + 1:
        return BetaFit(beta, rho, math.nan, ())
    held_out_ranks = []
    fold_betas = []
    for i in range(len(named)):
        keep = [j for j in range(len(named)) if j != i]
        fold_beta, _ = _best_beta([r[j] for j in keep], [lo[j] for j in keep], [s[j] for j in keep], grid)
        fold_betas.append(fold_beta)
        values = [car(r[j], lo[j], fold_beta) for j in range(len(named))]
        held_out_ranks.append(average_ranks(values)[i])
    return BetaFit(beta, rho, spearman(held_out_ranks, s), tuple(fold_betas))
