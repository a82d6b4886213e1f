"""AutoIF steps 4-6: answer (constraint, query) pairs, check every answer in the sandbox, judge, filter and summarise."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..backends.base import Backend
from ..respond import Respond
from .crossval import CrossValRules, pass_rate
from .queries import pair_rows
from .verify import AutoIFJudge, verify_answers

if TYPE_CHECKING:
    from datasets import Dataset

    from ..sandbox import Sandbox
    from .pipeline import AutoIFConfig

HISTOGRAM_BINS = 10
"""Pass-rate histogram: ten bins of width 0.1, the last one closed (it holds 1.0)."""


def answer_pairs(
    backend: Backend, kept: list[dict[str, Any]], queries: Sequence[str], config: "AutoIFConfig", *, batch_size: int
) -> tuple["Dataset", dict[str, Any]]:
    """Stage 4: pair each kept constraint with sampled queries and answer every pair ``responses_per_query`` times."""
    from datasets import Dataset

    respond = Respond(backend=backend, sampling=config.response_sampling, seed=config.seed, skip_unless=None)  # type: ignore[arg-type]
    rows = pair_rows(
        kept,
        queries,
        per_constraint=config.queries_per_constraint,
        responses_per_query=config.responses_per_query,
        seed=config.seed,
        placement=config.placement,
    )
    if not rows:
        empty: dict[str, list[Any]] = {
            k: [] for k in ("id", "pair_id", "constraint_id", "constraint", "query", "query_index", "response_index", "instruction", "input")
        }
        from datasets import Features, Value

        features = Features(
            {**{k: Value("string") for k in empty}, "query_index": Value("int64"), "response_index": Value("int64"), **respond.output_features()}
        )
        return Dataset.from_dict({**empty, **{k: [] for k in respond.output_features()}}, features=features), respond.metadata()
    return respond.map(Dataset.from_list(rows), batch_size=batch_size, desc="AutoIF 4/5: answering"), respond.metadata()


def check_answers(
    answered: "Dataset",
    kept_functions: dict[str, list[tuple[str, str]]],
    sandbox: "Sandbox",
    rules: CrossValRules,
    *,
    judge: Backend | None = None,
    batch_size: int = 16,
) -> tuple["Dataset", dict[str, Any] | None]:
    """Stage 5: verdicts and pass rate per answer, the judge's score when asked, and each row's ``autoif_status``."""
    from datasets import List, Value
    from tqdm.auto import tqdm

    from ..transform import map_rows

    features = {"verifier_ids": List(Value("string")), "verifier_results": List(Value("bool")), "pass_rate": Value("float64"),
                "autoif_status": Value("string"), "autoif_reason": Value("string")}  # fmt: skip
    if len(answered) == 0:  # map adds no column to an empty dataset
        judge_features = AutoIFJudge(backend=judge).output_features() if judge is not None else {}
        return with_empty_columns(answered, {**judge_features, **features}), AutoIFJudge(backend=judge).metadata() if judge is not None else None
    rows = answered.select_columns(["constraint_id", "output", "output_status"]).to_list()
    todo = [(k, r["constraint_id"], r["output"]) for k, r in enumerate(rows) if r["output_status"] == "ok" and r["output"]]
    with tqdm(total=len(todo), desc="AutoIF 5/5: checking answers in the sandbox", unit="answer") as bar:
        verdicts = verify_answers(todo, kept_functions, sandbox, progress=bar.update)
    ids = {cid: [vid for vid, _ in fns] for cid, fns in kept_functions.items()}
    judge_meta = None
    if judge is not None:
        judger = AutoIFJudge(backend=judge)
        answered = judger.map(answered, batch_size=batch_size, desc="AutoIF 5/5: judging")
        judge_meta = judger.metadata()
    scores = answered["judge_score"] if judge is not None else [None] * len(answered)
    judge_status = answered["judge_status"] if judge is not None else [None] * len(answered)
    columns: dict[str, list[Any]] = {"verifier_ids": [], "verifier_results": [], "pass_rate": [], "autoif_status": [], "autoif_reason": []}
    for k, r in enumerate(rows):
        results = verdicts.get(k)
        rate = pass_rate(results) if results is not None else None
        status, reason = _row_status(r, rate, scores[k], judge_status[k], rules, judged=judge is not None)
        columns["verifier_ids"].append(ids.get(r["constraint_id"], []) if results is not None else [])
        columns["verifier_results"].append(results or [])
        columns["pass_rate"].append(rate)
        columns["autoif_status"].append(status)
        columns["autoif_reason"].append(reason)
    out = map_rows(answered, _add_columns, features, with_indices=True, fn_kwargs={"columns": columns}, batch_size=1000, desc="Recording verdicts")
    return out, judge_meta


def with_empty_columns(ds: "Dataset", features: dict[str, Any]) -> "Dataset":
    """An empty ``ds`` with the columns of ``features`` added (``map`` adds none to an empty dataset)."""
    from datasets import Dataset, Features

    merged = Features({**ds.features, **features})
    return Dataset.from_dict({k: [] for k in merged}, features=merged)


def _add_columns(batch: dict[str, list[Any]], indices: list[int], columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {name: [values[i] for i in indices] for name, values in columns.items()}


def _row_status(
    row: dict[str, Any], rate: float | None, score: float | None, judge_status: str | None, rules: CrossValRules, *, judged: bool
) -> tuple[str, str | None]:
    if row["output_status"] != "ok":
        return "unanswered", f"the answer's status is {row['output_status']!r}"
    if rate is None:
        return "unverified", "no kept verifier for this constraint"
    if rules.min_pass_rate is not None and not rules.min_pass_rate.passes(rate):
        return "below_pass_rate", f"pass rate {rate:.2f} is not {rules.min_pass_rate}"
    if judged:
        if score is None:
            return "judge_unparsed", f"judge: no score ({judge_status})"
        if score < rules.min_judge_score:
            return "below_judge_score", f"judge score {score:g} is below {rules.min_judge_score:g}"
    return "ok", None


def pass_rate_histogram(rates: Sequence[float | None]) -> dict[str, Any]:
    """Counts of the pass rates in :data:`HISTOGRAM_BINS` equal bins over [0, 1] (None left out), with the exact 0 and 1 counts."""
    counts = [0] * HISTOGRAM_BINS
    values = [r for r in rates if r is not None]
    for r in values:
        counts[min(int(r * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] += 1
    edges = [round(k / HISTOGRAM_BINS, 2) for k in range(HISTOGRAM_BINS + 1)]
    return {"edges": edges, "counts": counts, "exactly_0": sum(r == 0 for r in values), "exactly_1": sum(r == 1 for r in values), "verified": len(values)}


def answer_summary(answers: "Dataset", judged: bool) -> dict[str, Any]:
    """The counts of stage 4-5 for the record and the printed summary."""
    cols = answers.select_columns(
        [c for c in ("output_status", "pass_rate", "autoif_status", "judge_status", "judge_score") if c in answers.column_names]
    ).to_dict()
    rates = cols.get("pass_rate", [])
    out: dict[str, Any] = {
        "rows": len(answers),
        "response_status": dict(Counter(cols.get("output_status", []))),
        "status": dict(Counter(cols.get("autoif_status", []))),
        "passing_all": sum(r == 1.0 for r in rates if r is not None),
        "kept": sum(s == "ok" for s in cols.get("autoif_status", [])),
        "pass_rate_histogram": pass_rate_histogram(rates),
    }
    if judged:
        out["judge"] = {"status": dict(Counter(cols["judge_status"])), "unparsed": sum(s == "unparsed" for s in cols["judge_status"]),
                        "scores": dict(Counter(str(s) for s in cols["judge_score"] if s is not None))}  # fmt: skip
    return out
