"""What the ``ic_ifd`` and ``ifd`` evaluate metrics compute (the modules in ``metrics/`` delegate here)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import DataError
from ..models.loading import EMBEDDED_MODEL
from ..stats import finite_mean
from .transform import Score

PER_ROW = {
    "ic_ifd": ("ic_ifd", "ifd", "loss_q", "loss_a_given_q", "loss_a"),
    "ifd": ("ifd", "loss_a_given_q", "loss_a"),
}


def metric_info(description: str, citation: str, inputs_description: str, reference_url: str) -> Any:
    """The ``evaluate.MetricInfo`` of a metric that reads ``instructions`` and ``responses``."""
    import datasets
    import evaluate

    return evaluate.MetricInfo(
        module_type="metric",
        description=description,
        citation=citation,
        inputs_description=inputs_description,
        features=datasets.Features({"instructions": datasets.Value("string"), "responses": datasets.Value("string")}),
        reference_urls=[reference_url],
    )


def metric_results(
    metric: str,
    instructions: Sequence[Any],
    responses: Sequence[Any],
    inputs: Sequence[Any] | None = None,
    *,
    model_id: str = EMBEDDED_MODEL,
    batch_size: int = 16,
    **options: Any,
) -> dict[str, Any]:
    """Per-row values and their means, as the paper reports them.

    A dataset's score is the arithmetic mean of its rows' values; rows whose value is
    undefined (NaN, see :mod:`hfevol.scoring.ifd`) are left out of the mean and counted
    in ``undefined``, with each row's reason in ``reasons``. ``options`` go to
    :class:`~hfevol.scoring.Score` (``mode``, ``ifd_form``, ``ic_ifd_form``,
    ``max_length``, ``device``, ``dtype``).

    Raises:
        DataError: no rows.
        ConfigError: a bad option, or lists of different lengths.
    """
    if len(instructions) == 0:
        raise DataError("nothing to score: the instructions list is empty")
    score = Score(model=model_id, batch_size=batch_size, progress=True, **options)
    columns = score.score_texts(list(instructions), list(responses), list(inputs) if inputs is not None else None)
    result: dict[str, Any] = {name: columns[name] for name in PER_ROW[metric]}
    headline = PER_ROW[metric][: 2 if metric == "ic_ifd" else 1]
    for name in headline:
        result[f"mean_{name}"] = finite_mean(columns[name], math.nan)
    result["undefined"] = sum(status != "ok" for status in columns["score_status"])
    result["reasons"] = columns["score_reason"]
    return result
