"""Running verifiers in the sandbox (cross-validation and answer checks), and the optional judge.

Model-written code never runs in this process: every function goes to
:class:`hfevol.sandbox.Sandbox`, one function with all its inputs per call, each in a fresh
child. Only a real ``True``/``False`` counts as a verdict; anything else is ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import prompts
from ..backends.base import Backend, GenerationRequest, GenerationResult, SamplingParams
from ..backends.local import TransformersBackend
from ..transform import Batch, GenerationTransform, Prepared, outcome
from .crossval import CrossValResult, CrossValRules, cross_validate

if TYPE_CHECKING:
    from ..sandbox import Sandbox

JUDGE_TEMPLATE = "autoif/judge"
JUDGE_SAMPLING = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=512)
USABLE_RUNS = frozenset({"ok", "killed_timeout", "crashed"})
"""Run statuses whose verdicts enter the matrix (a timeout or crash is a wrong verdict). A function that does
not compile, has no ``evaluate`` or met a sandbox failure is left out, with its status as the reason."""


def verdict(value: Any) -> bool | None:
    """Only a real bool is a verdict."""
    return value if isinstance(value, bool) else None


@dataclass
class ConstraintCheck:
    """The cross-validation of one constraint: which verifier ran how, and the rules' outcome."""

    run_status: dict[str, str]
    """Sandbox status of each candidate verifier id."""
    matrix_ids: list[str]
    """The verifier ids in the verdict matrix (usable runs), in order."""
    result: CrossValResult

    @property
    def kept_ids(self) -> list[str]:
        return [self.matrix_ids[f] for f in self.result.functions_kept]

    def accuracy(self) -> dict[str, float]:
        return dict(zip(self.matrix_ids, self.result.function_accuracy))


def check_constraint(functions: Sequence[tuple[str, str]], cases: Sequence[tuple[str, bool]], sandbox: "Sandbox", rules: CrossValRules) -> ConstraintCheck:
    """Run every (verifier id, source) on every case input in the sandbox and apply ``rules``."""
    inputs = [c[0] for c in cases]
    runs = sandbox.run_many([(src, inputs) for _, src in functions]) if functions and inputs else []
    status: dict[str, str] = {vid: run.status for (vid, _), run in zip(functions, runs)}
    if not inputs:
        status = {vid: "not_run" for vid, _ in functions}
    ids, matrix = [], []
    for (vid, _), run in zip(functions, runs):
        if run.status in USABLE_RUNS:
            ids.append(vid)
            results = list(run.results) + [None] * (len(inputs) - len(run.results))
            matrix.append([verdict(v) for v in results[: len(inputs)]])
    result = cross_validate(matrix, [c[1] for c in cases], rules)
    return ConstraintCheck(status, ids, result)


def verify_answers(
    answers: Sequence[tuple[int, str, str]],
    functions: dict[str, list[tuple[str, str]]],
    sandbox: "Sandbox",
    *,
    progress: Callable[[int], None] | None = None,
) -> dict[int, list[bool | None]]:
    """Verdicts of every kept function of a row's constraint on the row's answer.

    ``answers`` are (row, constraint id, answer text); ``functions`` maps a constraint id to
    its kept (verifier id, source). Each function runs once, on all the answers of its
    constraint. Returns, per row, one verdict per kept function in ``functions`` order.
    """
    by_constraint: dict[str, list[tuple[int, str]]] = {}
    for row, cid, text in answers:
        by_constraint.setdefault(cid, []).append((row, text))
    out: dict[int, list[bool | None]] = {row: [] for row, _, _ in answers}
    for cid, rows in by_constraint.items():
        kept = functions.get(cid, [])
        runs = sandbox.run_many([(src, [t for _, t in rows]) for _, src in kept]) if kept else []
        for run in runs:
            results = list(run.results) if run.status in USABLE_RUNS else []
            for k, (row, _) in enumerate(rows):
                out[row].append(verdict(results[k]) if k < len(results) else None)
        if progress is not None:
            progress(len(rows))
    return out


_SCORE = re.compile(r"score\W{0,4}?\s*(?:is|of|=|:)?\s*\**\s*(\d{1,2}(?:\.\d+)?)(?:\s*(?:/|out of)\s*10)?", re.IGNORECASE)
_BARE = re.compile(r"^\W{0,3}(\d{1,2}(?:\.\d+)?)\s*(?:/\s*10)?\W{0,3}$")


def parse_judge_score(text: str | None) -> float | None:
    """The judge's 0-10 score: the last ``Score: N`` (also ``N/10``, bold marks, remarks after it), else a last line
    that is only a number; None when there is none or it is off the scale."""
    if not text:
        return None
    found = [float(m.group(1)) for m in _SCORE.finditer(text)]
    if not found:
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        bare = _BARE.match(lines[-1]) if lines else None
        found = [float(bare.group(1))] if bare else []
    if not found or not 0 <= found[-1] <= 10:
        return None
    return found[-1]


@dataclass
class AutoIFJudge(GenerationTransform):
    """Score each answered row from 1 to 10: does the answer serve the query under the constraint?

    Input columns: ``query``, ``constraint``, ``output``, ``output_status`` (rows not ``ok`` are skipped).

    Output columns:
        - ``judge_score`` (float | None): the score read from the reply (:func:`parse_judge_score`).
        - ``judge_status`` (str): ``ok``, ``unparsed`` (no score in the reply), ``failed``, ``truncated``, ``skipped``.
        - ``judge_reason`` (str | None).
    """

    backend: Backend = field(default_factory=TransformersBackend)
    sampling: SamplingParams = JUDGE_SAMPLING

    stage = "autoif_judge"

    def __post_init__(self) -> None:
        self.check_settings()

    def input_columns(self) -> tuple[str, ...]:
        return ("query", "constraint", "output", "output_status")

    def prompt_templates(self) -> tuple[str, ...]:
        return (JUDGE_TEMPLATE,)

    def output_features(self) -> dict[str, Any]:
        from datasets import Value

        return {"judge_score": Value("float64"), "judge_status": Value("string"), "judge_reason": Value("string")}

    def prepare(self, batch: Batch, indices: list[int] | None) -> Prepared:
        self.check_columns(batch)
        n = len(batch["query"])
        prepared = self.start(n)
        out = prepared.out
        for j in range(n):
            if batch["output_status"][j] != "ok" or not batch["output"][j]:
                out["judge_status"][j] = "skipped"
                out["judge_reason"][j] = f"not judged: the answer's status is {batch['output_status'][j]!r}"
                continue
            prompt = prompts.render(JUDGE_TEMPLATE, query=batch["query"][j], constraint=batch["constraint"][j], response=batch["output"][j])
            prepared.rows.append(j)
            prepared.requests.append(GenerationRequest.chat(prompt, params=self.sampling))
        return prepared

    def apply(self, out: Batch, row: int, result: GenerationResult) -> None:
        text = (result.text or "").strip() if result.ok else None
        score = parse_judge_score(text)
        status: str  # outcome()'s statuses, and "unparsed"
        status, reason = outcome(result, text, self.sampling.max_new_tokens)
        if status == "ok" and score is None:
            status, reason = "unparsed", "no score from 0 to 10 in the judge's reply"
        out["judge_score"][row] = score
        out["judge_status"][row] = status
        out["judge_reason"][row] = reason
