"""Teacher selection with CAR: which response generator suits this student?

- :mod:`.generators`: several generators answer the same instructions (Generator-Zoo layout);
- :mod:`.reward`: a classifier reward model or an LLM judge scores each pair; :mod:`.judge_probs`: a judge read from its probabilities;
- :mod:`.compatibility`: the student's loss on each generator's responses;
- :mod:`.metrics`: CAR, the baselines, Spearman ρ and the β fit;
- :mod:`.compare`: all of it for one dataset; :mod:`.report`: the table, CSV, Markdown, chart.
"""

from __future__ import annotations

# None of these imports torch or transformers: a model loads when it is first used.
from .compare import CarResult, compare
from .compatibility import RowLoss, StudentLoss
from .generators import GeneratorSpec, generate_responses, parse_generator
from .judge_probs import ProbabilityJudgeReward
from .metrics import DEFAULT_BETA, BetaFit, CarTable, GeneratorStats, car, car_table, correlations, fit_beta, spearman
from .reward import ClassifierReward, JudgeReward, Reward

__all__ = [
    "DEFAULT_BETA",
    "BetaFit",
    "CarResult",
    "CarTable",
    "ClassifierReward",
    "GeneratorSpec",
    "GeneratorStats",
    "JudgeReward",
    "ProbabilityJudgeReward",
    "Reward",
    "RowLoss",
    "StudentLoss",
    "car",
    "car_table",
    "compare",
    "correlations",
    "fit_beta",
    "generate_responses",
    "parse_generator",
    "spearman",
]
