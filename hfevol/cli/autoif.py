"""``hfevol autoif``: verifiable instruction-following data. A model writes format constraints and Python verifiers;
the verifiers are cross-validated in a sandbox; the kept constraints are paired with queries, answered, and every
answer is checked by running the verifiers."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._options import add_endpoint_options, add_model_options, endpoint_of, mapping_from, request_backend_from, run_options
from ._report import _short, print_endpoint_summary

LEVELS = ("process", "seccomp", "bwrap", "bwrap+seccomp")
TABLES_DIR = "_autoif"
"""Folder (hidden from ``load_dataset`` and ``publish``) for the constraint and verifier tables."""
DPO_SUFFIX = "-dpo"
"""The DPO pairs go to their own output folder, ``<out>-dpo`` by default: inside ``<out>`` a second table would be
read by ``load_dataset(out)`` together with the answers."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("autoif", help="make verifiable instruction-following data (AutoIF)", description=__doc__)
    p.add_argument("--out", required=True, help="output folder: data/train.parquet (answers), hfevol_run.json, and the _autoif/ tables")
    p.add_argument(
        "--dpo-out", default=None, metavar="DIR", help=f"output folder for the DPO pairs, with --responses-per-query > 1 (default: <out>{DPO_SUFFIX})"
    )
    p.add_argument("--seed-constraints", default=None, metavar="FILE", help="seed constraints, one per line (default: the project's 36)")
    p.add_argument(
        "--queries", default=None, metavar="DATASET", help="queries: any dataset to_alpaca reads (file, folder, Hub id; default: the project's query file)"
    )
    p.add_argument("--queries-split", default="train")
    p.add_argument("--queries-format", default="auto", choices=["auto", "alpaca", "sharegpt", "messages"])
    p.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN", help="read the query dataset's FIELD from COLUMN (--map instruction=question)")
    p.add_argument("--preset", default="ea", choices=["ea", "autoif"], help="ea: the paper's code (default); autoif: the AutoIF paper's stricter rules")
    p.add_argument("--constraint-samples", type=int, default=100, metavar="K", help="times the constraint prompt is sent (default: 100; 0: seeds only)")
    p.add_argument("--constraints-per-reply", type=int, default=50, metavar="N", help="constraints asked for per reply (default: 50)")
    p.add_argument("--max-constraints", type=int, default=None, metavar="N", help="verify at most N unique constraints (seeds first)")
    p.add_argument("--no-seeds", action="store_true", help="do not keep the seed constraints themselves")
    p.add_argument("--functions-per-constraint", type=int, default=8, metavar="N", help="verifier samples per constraint (default: 8)")
    p.add_argument("--queries-per-constraint", type=int, default=16, metavar="K", help="queries sampled per constraint (default: 16)")
    p.add_argument("--responses-per-query", type=int, default=1, metavar="K", help="1: one greedy answer (default); more: sampled answers, and DPO pairs")
    p.add_argument(
        "--placement",
        default="split",
        choices=["split", "joined"],
        help="split: constraint as instruction, query as input (default); joined: both in instruction",
    )
    rules = p.add_argument_group("cross-validation and filters (default: the preset's)")
    rules.add_argument(
        "--case-agreement", type=float, default=None, metavar="R", help="share of functions a test case must agree with (ea: > 0; autoif: > 0.5)"
    )
    rules.add_argument(
        "--function-accuracy", type=float, default=None, metavar="R", help="accuracy a function needs on the kept cases (ea: >= 0.8; autoif: > 0.5)"
    )
    rules.add_argument("--min-functions", type=int, default=None, metavar="N", help="usable functions a constraint needs (ea: 1; autoif: 3)")
    rules.add_argument("--min-cases", type=int, default=None, metavar="N", help="test cases a constraint needs (ea: 1; autoif: 10)")
    rules.add_argument(
        "--min-pass-rate", type=float, default=None, metavar="R", help="keep answers passing this share of the kept functions (ea: off; autoif: > 0.5)"
    )
    rules.add_argument(
        "--judge",
        default=None,
        metavar="SPEC",
        help="score each answer 1-10 with this model or endpoint (embedded, local:PATH, http(s)://..., openai+http(s)://...)",
    )
    rules.add_argument("--min-judge-score", type=float, default=8.0, metavar="S", help="with --judge, keep answers scoring at least S (default: 8)")
    box = p.add_argument_group("sandbox")
    box.add_argument("--require-sandbox", default=None, choices=LEVELS, help="refuse to run below this sandbox level")
    box.add_argument("--per-input-timeout", type=float, default=1.0, metavar="S", help="seconds a verifier may take per input (default: 1)")
    add_model_options(p)
    sampling = p.add_argument_group("sampling")
    sampling.add_argument("--temperature", type=float, default=0.7, help="for constraints and verifiers (default: 0.7)")
    sampling.add_argument("--top-p", type=float, default=0.95)
    sampling.add_argument("--max-new-tokens", type=int, default=2048)
    sampling.add_argument("--seed", type=int, default=0, help="run seed; every sample and query choice derives its own")
    add_endpoint_options(p)
    p.set_defaults(run=run)


def check_options(args: argparse.Namespace) -> tuple[Any, Any]:
    """Every option check that needs no model: the config and the sandbox (probed at the required level)."""
    from ..autoif import AutoIFConfig, preset
    from ..backends.base import SamplingParams
    from ..sandbox import Sandbox

    for name in ("case_agreement", "function_accuracy", "min_pass_rate"):
        value = getattr(args, name)
        if value is not None and not 0 <= value <= 1:
            raise ConfigError(f"--{name.replace('_', '-')} {value} must be between 0 and 1", hint="thresholds are shares: 0.8 means 80%.")
    if args.responses_per_query < 1:
        raise ConfigError(
            f"--responses-per-query {args.responses_per_query} must be at least 1",
            hint="1 gives one greedy answer per query; more give sampled answers and DPO pairs.",
        )
    rules = preset(args.preset).with_options(
        case_agreement=args.case_agreement, function_accuracy=args.function_accuracy, min_functions=args.min_functions,
        min_cases=args.min_cases, min_pass_rate=args.min_pass_rate, min_judge_score=args.min_judge_score,
    )  # fmt: skip
    config = AutoIFConfig(
        preset=args.preset, rules=rules, constraint_samples=args.constraint_samples, constraints_per_reply=args.constraints_per_reply,
        max_constraints=args.max_constraints, keep_seeds=not args.no_seeds, functions_per_constraint=args.functions_per_constraint,
        queries_per_constraint=args.queries_per_constraint, responses_per_query=args.responses_per_query, placement=args.placement,
        sampling=SamplingParams(temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens), seed=args.seed,
    )  # fmt: skip
    sandbox = Sandbox(per_input_timeout=args.per_input_timeout, require=args.require_sandbox)
    sandbox.level  # noqa: B018 - probes now: a missing required level fails before any model call
    return config, sandbox


def run(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..autoif import load_queries, load_seed_constraints, run_autoif
    from ..io import write_output
    from ..locks import exclusive_lock

    config, sandbox = check_options(args)
    seeds = load_seed_constraints(args.seed_constraints)
    queries, query_counts = load_queries(args.queries, split=args.queries_split, mapping=mapping_from(args), format=args.queries_format)
    judge = _judge_backend(args)
    out = Path(args.out)
    with exclusive_lock(out, what="--out"):
        backend = request_backend_from(args)
        backend.describe()  # loads the model now: a bad --model fails before any row is processed
        endpoint = endpoint_of(backend)
        print(f"AutoIF ({args.preset}): {len(seeds)} seed constraints, {len(queries)} queries, sandbox {sandbox.level}")
        started = time.perf_counter()
        result = run_autoif(backend, sandbox, seeds, queries, config, judge=judge, batch_size=64 if endpoint else max(args.batch_size, 1) * 2)
        seconds = time.perf_counter() - started
        summary = {**result.summary, "queries": {**result.summary["queries"], **query_counts, "source": args.queries or "autoif"}}
        record = {
            "hfevol_version": __version__,
            "commands": [{"command": "autoif", "options": run_options(args)}],
            "source": args.queries or "autoif",
            "rows": len(result.answers),
            "sandbox": sandbox.level,
            "stages": result.stages,
            "autoif": summary,
        }
        write_output(result.answers, out, record)
        _write_jsonl(out / TABLES_DIR / "constraints.jsonl", result.constraints)
        _write_jsonl(out / TABLES_DIR / "verifiers.jsonl", result.verifiers)
        dpo_dir = None
        if config.responses_per_query > 1:
            from datasets import Dataset

            dpo_dir = Path(args.dpo_out) if args.dpo_out else out.with_name(out.name + DPO_SUFFIX)
            if result.dpo:
                with exclusive_lock(dpo_dir, what="--dpo-out"):
                    write_output(Dataset.from_list(result.dpo), dpo_dir, {**record, "rows": len(result.dpo), "dpo_of": str(out)})
    print_summary(summary, result, out=out, dpo_dir=dpo_dir, seconds=seconds)
    if endpoint is not None:
        print_endpoint_summary(endpoint.stats.snapshot(), cache_hits=getattr(backend, "hits", None))
    return 0


def _judge_backend(args: argparse.Namespace) -> Any:
    if not args.judge:
        return None
    from ..car.generators import backend_for, parse_generator

    spec = parse_generator(args.judge)
    if spec.kind == "column":
        raise ConfigError(f"--judge {args.judge!r}: a judge must be a model or an endpoint, not a column")
    return backend_for(spec, batch_size=args.batch_size)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    tmp.replace(path)


def print_summary(summary: dict[str, Any], result: Any, *, out: Path, dpo_dir: Path | None, seconds: float) -> None:
    """One block per stage: constraints, functions, cases, answers; then a few kept rows."""
    c, f, cases, a = summary["constraints"], summary["functions"], summary["cases"], summary["answers"]
    rules = summary["config"]["rules"]
    print(f"\n== AutoIF ({summary['preset']}) in {seconds:.1f} s, sandbox {summary['sandbox']}")
    print(f"   1 constraints  {c['samples']} replies, {c['generated_lines']} lines parsed ({c['dropped_lines']} dropped), "
          f"{c['duplicates']} duplicate(s); {c['unique']} unique with {c['seeds']} seeds, {c['used']} used")  # fmt: skip
    print(f"   2 verifiers    {f['samples']} samples, {f['parsed']} parsed; status {_counts(f['generation_status'])}")
    print(f"   3 cross-val    {c['checked']} constraints checked, {c['kept']} kept; functions kept {f['kept']}; "
          f"cases kept {cases['kept']} of {cases['candidates']} (cases {rules['case_agreement']}, functions {rules['function_accuracy']})")  # fmt: skip
    if f["run_status"]:
        print(f"                  sandbox runs: {_counts(f['run_status'])}")
    for reason, n in sorted(c["crossval_reasons"].items(), key=lambda kv: -kv[1])[:3]:
        print(f"                  {n:>4} × {_short(reason, 90)}")
    print(f"   4 answers      {a['rows']} rows; responses {_counts(a['response_status'])}")
    print(f"   5 verified     {a['pass_rate_histogram']['verified']} answers, {a['passing_all']} passing every kept function; "
          f"{a['kept']} kept (pass rate {rules['min_pass_rate'] or 'not filtered'}); status {_counts(a['status'])}")  # fmt: skip
    if "judge" in a:
        print(f"                  judge: {_counts(a['judge']['status'])}; {a['judge']['unparsed']} unparsed")
    if dpo_dir is not None:
        print(
            f"   6 DPO pairs    {summary['dpo_pairs']}"
            + (f" in {dpo_dir}" if summary["dpo_pairs"] else " (no answer passed all functions where another passed none)")
        )
    kept = [r for r in result.answers.select_columns(["constraint", "query", "output", "autoif_status"]).to_list() if r["autoif_status"] == "ok"][:2]
    for r in kept:
        print(f"\n   constraint: {_short(r['constraint'], 100)}\n   query:      {_short(r['query'], 100)}\n   answer:     {_short(r['output'], 100)}")
    print(f"\n   output: {out}  (tables: {out / TABLES_DIR})")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"
