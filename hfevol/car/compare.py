"""Compare generators for one student: rewards, student losses, CAR, baselines, ρ and β."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import DataError
from ..stats import finite_mean
from .compatibility import RowLoss, StudentLoss
from .generators import Coverage, GeneratorSpec, check_responses
from .metrics import (
    DEFAULT_BETA,
    BetaFit,
    CarTable,
    GeneratorStats,
    LossAveraging,
    NegativeRewards,
    car_table,
    check_scores,
    correlations,
    fit_beta,
    reward_offset,
)
from .reward import Reward


@dataclass
class CarResult:
    """Everything ``hfevol car`` reports."""

    table: CarTable
    reward: dict[str, Any]
    """Which reward was used (:meth:`Reward.describe`)."""
    student: dict[str, Any]
    coverage: Coverage
    unrated: dict[str, int]
    """Per generator: compared rows whose reward could not be read (the judge gave no rating)."""
    rows: dict[str, list[dict[str, float]]]
    """Per generator, per compared row: reward, loss, tokens."""
    scores: dict[str, float] = field(default_factory=dict)
    rho: dict[str, float] = field(default_factory=dict)
    beta_fit: BetaFit | None = None


def compare(
    ds: Any,
    specs: Sequence[GeneratorSpec],
    reward: Reward,
    student: StudentLoss,
    *,
    beta: float = DEFAULT_BETA,
    loss_averaging: LossAveraging = "token",
    negative_rewards: NegativeRewards = "shift",
    scores: Mapping[str, float] | None = None,
    fit: bool = True,
    allow_missing: bool = False,
    instruction_column: str = "instruction",
    progress: bool = True,
) -> CarResult:
    """Score every generator's responses in ``ds`` (Generator-Zoo layout) and rank the generators.

    ``scores`` (measured student scores, by generator label) are checked before any model
    runs; with them, the result holds the Spearman ρ of every metric and, with ``fit``,
    the β fit.

    Raises:
        DataError: missing responses (see :func:`check_responses`), bad scores (fewer than
            3 generators, constant, unknown names), negative rewards with ``"raise"``, or
            a generator none of whose rows could be rated.
    """
    labels = [s.label for s in specs]
    if scores:
        check_scores(scores, labels)
    coverage = check_responses(ds, specs, allow_missing=allow_missing)
    picked = ds.select(coverage.rows)
    instructions = list(picked[instruction_column])
    stats, per_row, unrated, row_rewards = [], {}, {}, []
    for spec in specs:
        responses = list(picked[spec.target if spec.kind == "column" else spec.label])
        rewards = reward.score(instructions, responses)
        losses: list[RowLoss] = student.measure(instructions, responses, progress=f"Student loss: {spec.label}" if progress else False)
        rated = [r for r in rewards if not math.isnan(r)]
        unrated[spec.label] = len(rewards) - len(rated)
        if not rated:
            raise DataError(
                f"no reward could be read for any response of generator {spec.label!r}",
                hint="check the reward model or the judge's replies (try a stronger judge).",
            )
        row_rewards.extend(rated)
        scored = [loss for loss in losses if loss.tokens]
        tokens = sum(loss.tokens for loss in scored)
        stats.append(
            GeneratorStats(
                name=spec.label,
                rows=len(responses),
                mean_reward=sum(rated) / len(rated),
                loss_token_mean=sum(loss.total for loss in scored) / tokens if tokens else math.nan,
                loss_row_mean=sum(loss.mean for loss in scored) / len(scored) if scored else math.nan,
                ifd=finite_mean([loss.ifd for loss in scored], math.nan),
                mean_length=sum(loss.tokens - 1 for loss in scored) / len(scored) if scored else math.nan,
            )
        )
        per_row[spec.label] = [{"reward": r, "loss": loss.mean, "tokens": loss.tokens, "ifd": loss.ifd} for r, loss in zip(rewards, losses)]
    offset = reward_offset({s.name: s.mean_reward for s in stats}, min(row_rewards), negative_rewards)
    table = car_table(stats, beta=beta, loss_averaging=loss_averaging, offset=offset)
    result = CarResult(table=table, reward=reward.describe(), student=student.describe(), coverage=coverage, unrated=unrated, rows=per_row)
    if scores:
        result.scores = dict(scores)
        result.rho = correlations(table, scores)
        if fit:
            result.beta_fit = fit_beta(table.column("reward"), table.column("loss"), scores)
    return result
