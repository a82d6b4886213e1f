"""AutoIF: verifiable instruction-following data from model-written constraints and verifiers run in a sandbox.

Stages (each row of each table keeps a status and a reason):

1. :class:`ConstraintWriter`: self-instruct new format constraints from the seeds; read robustly
   (:func:`parse_constraint_lines`) and deduplicated (:func:`collect_constraints`).
2. :class:`VerifierWriter`: per constraint, N samples of ``{"func", "cases"}``, parsed leniently and
   safely (:func:`parse_verifier_reply`).
3. :func:`cross_validate`: the rules on a verdict matrix, with the presets ``ea`` and ``autoif``
   (:data:`PRESETS`); the functions run in :class:`hfevol.sandbox.Sandbox`.
4. Queries (:func:`load_queries`, :func:`sample_queries`) answered through :class:`~hfevol.respond.Respond`.
5. Every kept function runs on every answer (pass rate per answer), an optional judge scores it.
6. Alpaca + ``messages`` rows, and DPO pairs (:func:`dpo_pairs`) when answers are sampled.

:func:`run_autoif` runs them all; ``hfevol autoif`` is the command.
"""

from .constraints import ConstraintWriter, collect_constraints, load_seed_constraints, normalise_constraint, parse_constraint_lines
from .crossval import PRESETS, CrossValResult, CrossValRules, Threshold, cross_validate, pass_rate, preset
from .dpo import dpo_pairs
from .pipeline import AutoIFConfig, AutoIFResult, run_autoif
from .queries import load_queries, pair_rows, place, sample_queries
from .verifiers import ParsedVerifier, VerifierWriter, expected_bool, parse_verifier_reply
from .verify import AutoIFJudge, parse_judge_score

__all__ = [
    "PRESETS",
    "AutoIFConfig",
    "AutoIFJudge",
    "AutoIFResult",
    "ConstraintWriter",
    "CrossValResult",
    "CrossValRules",
    "ParsedVerifier",
    "Threshold",
    "VerifierWriter",
    "collect_constraints",
    "cross_validate",
    "dpo_pairs",
    "expected_bool",
    "load_queries",
    "load_seed_constraints",
    "normalise_constraint",
    "pair_rows",
    "parse_constraint_lines",
    "parse_judge_score",
    "parse_verifier_reply",
    "pass_rate",
    "place",
    "preset",
    "run_autoif",
    "sample_queries",
]
