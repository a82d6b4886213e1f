"""``hfevol car``: which response generator suits this student? Ranks generators by the Compatibility-Adjusted Reward."""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError, DatasetNotFoundError
from ..io import BUILTIN_SAMPLE
from ..output_folder import output_errors
from ._claim import writes_output
from ._options import add_column_options, add_dataset_options, add_limit_option, check_limit, rows_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("car", help="rank response generators for a student model by CAR", description=__doc__)
    p.add_argument("--student", default="embedded", help="the model to be fine-tuned: 'embedded', 'embedded:gemma3-270m', a folder or a cached Hub id")
    p.add_argument("--student-template", default=None, metavar="NAME", help="format pairs with a named chat template ('plain') instead of the student's own")
    p.add_argument(
        "--generator",
        action="append",
        required=True,
        metavar="[LABEL=]SPEC",
        help="local:MODEL, embedded, embedded:gemma3-270m, http(s)://HOST (TGI), openai+http(s)://HOST/v1, or column:NAME; repeat",
    )
    p.add_argument(
        "--reward",
        required=True,
        metavar="MODEL | judge:SPEC | judge-probs:SPEC",
        help="a sequence-classification reward model (folder or cached Hub id); judge: followed by a generator spec "
        "(judge:embedded), which rates each pair in words; or judge-probs: and a local model, whose expected rating is read from its probabilities",
    )
    p.add_argument("--reward-head", type=int, default=None, help="which output of a multi-output reward model is the reward (counted from 0)")
    add_dataset_options(
        p,
        dataset=f"instructions (and existing response columns): a file, a folder, a Hub id, or {BUILTIN_SAMPLE!r}",
        out="folder for car.csv/.md, car_chart.png, car_run.json, car_rows.jsonl, the responses and the run record (hfevol_run.json)",
    )
    add_column_options(p, "instruction")
    add_limit_option(p, verb="use")
    p.add_argument("--beta", type=float, default=1.0, help="CAR's β (default: 1.0; the paper does not state its value)")
    p.add_argument(
        "--loss-averaging",
        choices=["token", "row"],
        default="token",
        help="student loss over all response tokens (token, default) or the mean of per-row means (row)",
    )
    p.add_argument(
        "--negative-rewards",
        choices=["shift", "raise"],
        default="shift",
        help="a negative mean reward: shift all rewards so the lowest is 0 (default), or stop",
    )
    p.add_argument("--scores", default=None, metavar="CSV", help="measured student scores: columns 'generator' and 'score' (or --score-column)")
    p.add_argument("--score-column", default="score")
    p.add_argument("--no-fit", action="store_true", help="with --scores: report ρ but do not fit β")
    p.add_argument("--allow-missing", action="store_true", help="compare only the rows every generator answered, instead of stopping")
    p.add_argument("--max-new-tokens", type=int, default=256, help="per generated response (default: 256)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def read_scores(path: str, column: str = "score") -> dict[str, float]:
    """``generator`` → score from a CSV file."""
    file = Path(path)
    if not file.is_file():
        raise DatasetNotFoundError(f"scores file {path!r} does not exist")
    with file.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        if "generator" not in fields or column not in fields:
            raise DataError(
                f"scores file {path!r} has columns {fields}; it needs 'generator' and {column!r}", hint="name the score column with --score-column."
            )
        scores: dict[str, float] = {}
        for line, row in enumerate(reader, start=2):
            try:
                value = float(row[column])
            except (TypeError, ValueError):
                raise DataError(f"scores file {path!r}, line {line}: {column}={row[column]!r} is not a number") from None
            if not math.isfinite(value):
                raise DataError(f"scores file {path!r}, line {line}: {column}={row[column]!r} is not a finite number")
            if row["generator"] in scores:
                raise DataError(f"scores file {path!r}, line {line}: generator {row['generator']!r} appears twice")
            scores[row["generator"]] = value
    return scores


def reward_from(args: argparse.Namespace):  # noqa: ANN201 - a Reward
    from ..car.generators import backend_for, parse_generator
    from ..car.reward import ClassifierReward, JudgeReward

    if args.reward.startswith("judge-probs:"):
        from ..car.judge_probs import ProbabilityJudgeReward

        spec = parse_generator(args.reward.removeprefix("judge-probs:"))
        if spec.kind != "local":
            raise ConfigError(
                f"--reward {args.reward!r}: the probability judge reads a local model's probabilities",
                hint="give a local model (judge-probs:embedded, judge-probs:local:PATH), or use judge:URL for an endpoint.",
            )
        return ProbabilityJudgeReward(model=spec.target, batch_size=args.batch_size)
    if args.reward.startswith("judge:"):
        spec = parse_generator(args.reward.removeprefix("judge:"))
        if spec.kind == "column":
            raise ConfigError(f"--reward {args.reward!r}: a judge must be a model or an endpoint, not a column")
        return JudgeReward(backend=backend_for(spec, batch_size=args.batch_size))
    return ClassifierReward(model=args.reward, reward_head=args.reward_head, batch_size=args.batch_size)


def _generator_entry(spec: Any, ds: Any) -> dict[str, Any]:
    """How the record names a generator: a column by its name, a model by its identity (from the responder
    column Respond wrote), never by an endpoint URL or an absolute path."""
    import json

    from ..record import BackendInfo, StageRecord

    if spec.kind == "column":
        return {"label": spec.label, "kind": "column", "column": spec.target}
    entry: dict[str, Any] = {"label": spec.label, "kind": spec.kind, "api": spec.api}
    column = f"{spec.label}_responder"
    responder = next((r for r in ds[column] if r), None) if column in ds.column_names else None
    backend = (
        StageRecord.from_json(json.loads(responder)).backend
        if responder
        else BackendInfo.from_description({"kind": spec.kind}, model=spec.target if spec.kind == "local" else None)
    )
    return {**entry, "backend": backend.kind, "model": backend.served_model or backend.model, "revision": backend.revision}


def _public_spec(text: str) -> str:
    """A ``--generator`` / ``--reward`` value fit for a record: a URL without user-info or query values, a local path relative."""
    import os

    from ..redact import redact_url

    i = text.find("://")
    if i != -1:
        start = max(text.rfind("=", 0, i), text.rfind(":", 0, i)) + 1  # after "LABEL=" or "judge:"
        return text[:start] + redact_url(text[start:])
    head, sep, path = text.rpartition(":") if ":" in text else ("", "", text)
    return head + sep + (os.path.relpath(path) if os.path.isabs(path) else path)


def car_record(args: argparse.Namespace, read: Any, ds: Any, specs: list[Any], result: Any, sampling: Any) -> Any:
    """The run record of a car output: the input's record (when it is an hfevol output) with the ``car`` command and stage.

    ``read`` is the rows as read (their digest is the stage's input), ``ds`` the rows with the generated
    responses. The stage's backend is the student; its settings name every generator, the reward, β and
    the recommendation.
    """
    from ..record import BackendInfo, DataRef, StageRecord, chain_command
    from ._options import run_options

    student = BackendInfo.from_description({"kind": "transformers", **result.student})
    reward = {k: v for k, v in result.reward.items() if k in ("kind", "model", "reward_head", "prompt_version") and v is not None}
    if isinstance(result.reward.get("model"), str):
        reward["model"] = BackendInfo.from_description({}, model=result.reward["model"]).model  # a local folder by its name, as a stage's backend
    if isinstance(result.reward.get("backend"), dict):  # a judge: its model, not its URL
        judge = BackendInfo.from_description(result.reward["backend"])
        reward["model"] = judge.served_model or judge.model
    meta = StageRecord.describe(
        "car", backend=student, sampling=sampling, seed=args.seed, student=student.model, generators=[_generator_entry(s, ds) for s in specs],
        reward=reward, beta=result.table.beta, loss_averaging=result.table.loss_averaging, best=result.table.best,
        rows_compared=len(result.coverage.rows),
    )  # fmt: skip
    stage = StageRecord.from_json(meta).recorded(input=read)
    options = {
        **run_options(args),
        "generator": [_public_spec(g) for g in args.generator],
        "reward": _public_spec(args.reward),
        "student": _public_spec(args.student),
    }
    record = chain_command(args.dataset, read, "car", options, stage, split=args.split)
    source = DataRef.of(args.dataset, split=args.split)
    if source.path is None or Path(source.path).resolve() != Path(args.out).expanduser().resolve():
        record = record.with_files([], rows=len(read))  # the data files stay in the input's folder; a car folder holds none
    return record.with_extras(car={"best": result.table.best, "generators": [s.label for s in specs], "rows_compared": len(result.coverage.rows)})


@writes_output()
def run(args: argparse.Namespace) -> int:
    from ..backends.base import SamplingParams
    from ..car import report
    from ..car.compare import compare
    from ..car.compatibility import StudentLoss
    from ..car.generators import check_labels, generate_responses, parse_generator
    from ..car.metrics import check_beta, check_scores

    started = time.perf_counter()
    check_beta(args.beta)
    specs = [parse_generator(g) for g in args.generator]
    scores = read_scores(args.scores, args.score_column) if args.scores else {}
    if scores:
        check_scores(scores, [s.label for s in specs])  # before any model runs
    check_limit(args)
    student = StudentLoss(student=args.student, template=args.student_template, batch_size=args.batch_size)
    reward = reward_from(args)
    ds = read = rows_from(args)
    check_labels(specs, ds.column_names)
    sampling = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=args.max_new_tokens)
    ds = generate_responses(ds, specs, sampling=sampling, seed=args.seed, batch_size=args.batch_size, instruction_column=args.instruction_column)
    out = Path(args.out)
    with output_errors(out):
        out.mkdir(parents=True, exist_ok=True)
        ds.to_json(out / "responses.jsonl")  # the Generator-Zoo table: work done is kept even if scoring fails
    result = compare(
        ds,
        specs,
        reward,
        student,
        beta=args.beta,
        loss_averaging=args.loss_averaging,
        negative_rewards=args.negative_rewards,
        scores=scores or None,
        fit=not args.no_fit,
        allow_missing=args.allow_missing,
        instruction_column=args.instruction_column,
    )
    with output_errors(out):
        paths = report.write(result, out)
        paths["record"] = car_record(args, read, ds, specs, result, sampling).write(out)  # atomic: a temporary file, then renamed
    print()
    print(report.markdown(result))
    print(f"== car: {len(specs)} generators, {len(result.coverage.rows)} rows, {time.perf_counter() - started:.1f} s; recommended: {result.table.best}")
    for kind, path in {"responses": out / "responses.jsonl", **paths}.items():
        print(f"   {kind:<9} {path}")
    return 0
