"""The AutoIF pipeline: constraints → verifiers → cross-validation → answers → verification (→ judge, DPO pairs).

:func:`run_autoif` runs the five stages on one generation backend and one
:class:`~hfevol.sandbox.Sandbox`. The model stages are ``datasets`` map transforms (with
progress bars and, against an endpoint, concurrent requests); the sandbox stages run each
function once over all its inputs. Every constraint, verifier and answer keeps a row with a
status and a reason, and :attr:`AutoIFResult.summary` holds the counts a run record and a
dataset card need.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..backends.base import GREEDY, Backend, SamplingParams
from ..errors import ConfigError
from .constraints import ConstraintWriter, collect_constraints
from .crossval import CrossValRules, preset
from .queries import PLACEMENTS, Placement
from .verifiers import VerifierWriter, dedup_cases, dedup_functions
from .verify import check_constraint

if TYPE_CHECKING:
    from datasets import Dataset

    from ..sandbox import Sandbox

RESPONSE_SAMPLING = SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=2048)
"""Decoding for k > 1 sampled answers per query (the AutoIF paper); one answer is greedy, as in the paper's code."""


@dataclass
class AutoIFConfig:
    """The settings of one AutoIF run (the defaults are the paper's code, preset ``ea``)."""

    preset: str = "ea"
    rules: CrossValRules | None = None
    """The thresholds; None takes the preset's."""
    constraint_samples: int = 100
    """How many times the constraint prompt is sent (0: use the seeds only)."""
    constraints_per_reply: int = 50
    max_constraints: int | None = None
    """Verify at most this many unique constraints (seeds first); the rest are recorded as not used."""
    keep_seeds: bool = True
    functions_per_constraint: int = 8
    queries_per_constraint: int = 16
    responses_per_query: int = 1
    placement: Placement = "split"
    sampling: SamplingParams = field(default_factory=SamplingParams)
    """Decoding of the constraint and verifier samples."""
    response_sampling: SamplingParams | None = None
    """Decoding of the answers; None: greedy for one answer per query, :data:`RESPONSE_SAMPLING` for more."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rules is None:
            self.rules = preset(self.preset)
        for name in ("functions_per_constraint", "queries_per_constraint", "responses_per_query", "constraints_per_reply"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name.replace('_', '-')} {value!r} must be an integer >= 1")
        if isinstance(self.constraint_samples, bool) or not isinstance(self.constraint_samples, int) or self.constraint_samples < 0:
            raise ConfigError(f"constraint-samples {self.constraint_samples!r} must be an integer >= 0")
        if self.max_constraints is not None and self.max_constraints < 1:
            raise ConfigError(f"max-constraints {self.max_constraints!r} must be at least 1")
        if self.placement not in PLACEMENTS:
            raise ConfigError(f"placement {self.placement!r} is not one of {', '.join(PLACEMENTS)}")
        if self.response_sampling is None:
            self.response_sampling = GREEDY if self.responses_per_query == 1 else RESPONSE_SAMPLING

    def to_dict(self) -> dict[str, Any]:
        assert self.rules is not None and self.response_sampling is not None
        return {
            "preset": self.preset,
            "rules": self.rules.to_dict(),
            **{k: getattr(self, k) for k in ("constraint_samples", "constraints_per_reply", "max_constraints", "keep_seeds",
                                              "functions_per_constraint", "queries_per_constraint", "responses_per_query", "placement", "seed")},
            "sampling": self.sampling.to_dict(),
            "response_sampling": self.response_sampling.to_dict(),
        }  # fmt: skip


@dataclass
class AutoIFResult:
    """What a run produced: the three tables, the answer dataset, DPO pairs, stage metadata and the summary."""

    constraints: list[dict[str, Any]]
    verifiers: list[dict[str, Any]]
    answers: "Dataset"
    dpo: list[dict[str, Any]]
    stages: list[dict[str, Any]]
    summary: dict[str, Any]


def generate_constraints(
    backend: Backend, seeds: Sequence[str], config: AutoIFConfig, *, batch_size: int = 16
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Stage 1: the constraint table (seeds, then generated lines, duplicates marked), the stage metadata and counts."""
    from datasets import Dataset

    writer = ConstraintWriter(backend=backend, seeds=tuple(seeds), count=config.constraints_per_reply, sampling=config.sampling, seed=config.seed)
    samples: list[dict[str, Any]] = []
    if config.constraint_samples:
        ds = Dataset.from_dict({"sample": list(range(config.constraint_samples))})
        samples = writer.map(ds, batch_size=batch_size, desc="AutoIF 1/5: writing constraints").to_list()
    rows = collect_constraints(list(seeds), samples, keep_seeds=config.keep_seeds)
    used = 0
    for row in rows:
        if row["constraint_status"] != "ok":
            continue
        if config.max_constraints is not None and used >= config.max_constraints:
            row["constraint_status"], row["constraint_reason"] = "not_used", f"beyond max_constraints={config.max_constraints}"
            continue
        used += 1
    counts = {
        "seeds": len(seeds),
        "samples": len(samples),
        "sample_status": dict(Counter(s["constraint_status"] for s in samples)),
        "generated_lines": sum(len(s["constraint_lines"]) for s in samples),
        "dropped_lines": sum(s["constraint_dropped_lines"] for s in samples),
        "duplicates": sum(r["constraint_status"] == "duplicate" for r in rows),
        "unique": sum(r["constraint_status"] in ("ok", "not_used") for r in rows),
        "used": used,
    }
    return rows, writer.metadata(), counts


def write_verifiers(
    backend: Backend, constraints: list[dict[str, Any]], config: AutoIFConfig, *, batch_size: int = 16
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Stage 2: ``functions_per_constraint`` verifier samples per usable constraint, duplicates marked."""
    from datasets import Dataset

    writer = VerifierWriter(backend=backend, sampling=config.sampling, seed=config.seed)
    todo = [c for c in constraints if c["constraint_status"] == "ok"]
    rows = [
        {"constraint_id": c["constraint_id"], "constraint": c["constraint"], "verifier_sample": k} for c in todo for k in range(config.functions_per_constraint)
    ]
    if not rows:
        return [], writer.metadata()
    written = writer.map(Dataset.from_list(rows), batch_size=batch_size, desc="AutoIF 2/5: writing verifiers").to_list()
    for cid in dict.fromkeys(r["constraint_id"] for r in written):
        group = [r for r in written if r["constraint_id"] == cid]
        for r, twin in zip(group, dedup_functions([r["verifier_func"] for r in group])):
            r["duplicate_of"] = None if twin is None else group[twin]["verifier_id"]
    return written, writer.metadata()


def cross_validate_all(
    constraints: list[dict[str, Any]], verifiers: list[dict[str, Any]], sandbox: "Sandbox", rules: CrossValRules
) -> dict[str, list[tuple[str, str]]]:
    """Stage 3: run and judge each constraint's verifiers; fill the crossval columns of both tables; return the kept functions."""
    from tqdm.auto import tqdm

    by_constraint: dict[str, list[dict[str, Any]]] = {}
    for v in verifiers:
        by_constraint.setdefault(v["constraint_id"], []).append(v)
        v.update(crossval_status=None, crossval_reason=None, run_status=None, accuracy=None, kept=False)
    kept: dict[str, list[tuple[str, str]]] = {}
    for c in constraints:
        c.update(
            crossval_status="not_checked", crossval_reason=c["constraint_reason"], verifier_candidates=0, verifiers_kept=[], cases_candidates=0, cases_kept=[]
        )
    todo = [c for c in constraints if c["constraint_status"] == "ok"]
    for c in tqdm(todo, desc="AutoIF 3/5: cross-validating in the sandbox", unit="constraint"):
        group = by_constraint.get(c["constraint_id"], [])
        for v in group:
            if v["verifier_func"] is None:
                v["crossval_status"], v["crossval_reason"] = "no_function", v["verifier_reason"] or "no function in the reply"
            elif v["duplicate_of"] is not None:
                v["crossval_status"], v["crossval_reason"] = "duplicate", f"same function as {v['duplicate_of']}"
        usable = [v for v in group if v["crossval_status"] is None]
        cases = dedup_cases([(case["input"], case["output"]) for v in usable for case in v["verifier_cases"]])
        check = check_constraint([(v["verifier_id"], v["verifier_func"]) for v in usable], cases, sandbox, rules)
        accuracy = check.accuracy()
        kept_ids = set(check.kept_ids)
        for v in usable:
            v["run_status"] = check.run_status.get(v["verifier_id"])
            v["accuracy"] = accuracy.get(v["verifier_id"])
            if v["verifier_id"] in kept_ids:
                v["crossval_status"], v["kept"] = "kept", True
            elif v["verifier_id"] not in check.matrix_ids:
                v["crossval_status"], v["crossval_reason"] = (
                    "not_run",
                    (f"the sandbox run ended {v['run_status']}" if v["run_status"] != "not_run" else "not run: the constraint has no usable test case"),
                )
            else:
                v["crossval_status"] = "dropped"
                below = v["accuracy"] is not None and not rules.function_accuracy.passes(v["accuracy"])
                v["crossval_reason"] = f"accuracy {v['accuracy']:.2f} is not {rules.function_accuracy}" if below else check.result.reason
        c["verifier_candidates"] = len(check.matrix_ids)
        c["cases_candidates"] = len(cases)
        c["cases_kept"] = [{"input": cases[k][0], "output": cases[k][1]} for k in check.result.cases_kept]
        c["verifiers_kept"] = check.kept_ids
        c["crossval_status"] = "kept" if check.result.kept else "dropped"
        c["crossval_reason"] = check.result.reason
        if check.result.kept:
            sources = {v["verifier_id"]: v["verifier_func"] for v in usable}
            kept[c["constraint_id"]] = [(vid, sources[vid]) for vid in check.kept_ids]
    return kept


def run_autoif(
    backend: Backend,
    sandbox: "Sandbox",
    seeds: Sequence[str],
    queries: Sequence[str],
    config: AutoIFConfig | None = None,
    *,
    judge: Backend | None = None,
    batch_size: int = 16,
) -> AutoIFResult:
    """Run the whole pipeline; see the module docstring. Nothing is written to disk here.

    Args:
        backend: writes constraints and verifiers and answers the queries.
        sandbox: runs every model-written function (its level goes into the summary).
        seeds: the seed constraints (:func:`~hfevol.autoif.constraints.load_seed_constraints`).
        queries: the user queries (:func:`~hfevol.autoif.queries.load_queries`).
        judge: an optional backend that scores each answer from 1 to 10.
    """
    from ..formats import add_messages
    from .answers import answer_pairs, answer_summary, check_answers
    from .dpo import dpo_pairs

    config = config or AutoIFConfig()
    rules = config.rules
    assert rules is not None
    if not seeds:
        raise ConfigError("AutoIF needs at least one seed constraint")
    if not queries:
        raise ConfigError("AutoIF needs at least one query")
    constraints, meta1, counts1 = generate_constraints(backend, seeds, config, batch_size=batch_size)
    verifiers, meta2 = write_verifiers(backend, constraints, config, batch_size=batch_size)
    kept_functions = cross_validate_all(constraints, verifiers, sandbox, rules)
    kept_constraints = [c for c in constraints if c["constraint_id"] in kept_functions]
    answered, meta4 = answer_pairs(backend, kept_constraints, queries, config, batch_size=batch_size)
    answers, judge_meta = check_answers(answered, kept_functions, sandbox, rules, judge=judge, batch_size=batch_size)
    if len(answers):
        answers = add_messages(answers)
    else:
        from datasets import List, Value

        from .answers import with_empty_columns

        answers = with_empty_columns(answers, {"messages": List({"role": Value("string"), "content": Value("string")})})
    dpo = dpo_pairs(answers.to_list()) if config.responses_per_query > 1 else []
    checked = [c for c in constraints if c["crossval_status"] != "not_checked"]
    summary: dict[str, Any] = {
        "preset": config.preset,
        "config": config.to_dict(),
        "sandbox": sandbox.level,
        "constraints": {**counts1, "checked": len(checked), "kept": len(kept_constraints),
                        "crossval_reasons": dict(Counter(_reason_kind(c["crossval_reason"]) for c in checked if c["crossval_status"] != "kept"))},
        "functions": {
            "samples": len(verifiers),
            "parsed": sum(v["verifier_func"] is not None for v in verifiers),
            "generation_status": dict(Counter(v["verifier_status"] for v in verifiers)),
            "crossval_status": dict(Counter(v["crossval_status"] for v in verifiers)),
            "run_status": dict(Counter(v["run_status"] for v in verifiers if v["run_status"])),
            "kept": sum(v["kept"] for v in verifiers),
        },
        "functions_per_constraint": {c["constraint_id"]: len(c["verifiers_kept"]) for c in checked},
        "cases": {"candidates": sum(c["cases_candidates"] for c in checked), "kept": sum(len(c["cases_kept"]) for c in checked)},
        "answers": answer_summary(answers, judge is not None),
        "queries": {"available": len(queries)},
        "dpo_pairs": len(dpo),
    }  # fmt: skip
    stages = [meta1, meta2, {"stage": "autoif_crossval", "rules": rules.to_dict(), "sandbox": sandbox.level}, meta4,
              {"stage": "autoif_verify", "sandbox": sandbox.level, "min_pass_rate": summary["config"]["rules"]["min_pass_rate"]}]  # fmt: skip
    if judge_meta is not None:
        stages.append({**judge_meta, "min_judge_score": rules.min_judge_score})
    return AutoIFResult(constraints, verifiers, answers, dpo, stages, summary)


def _reason_kind(reason: str | None) -> str:
    """A reason without its numbers, so that counts group alike reasons."""
    import re

    return re.sub(r"\d+(?:\.\d+)?", "N", reason or "unknown")
