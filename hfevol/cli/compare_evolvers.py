"""``hfevol compare-evolvers``: which evolver? Evolve the same seeds with each, answer with one responder,
score IC-IFD with one scorer, analyse (MND, difficulty, reward), and compare them side by side."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io import BUILTIN_SAMPLE
from ._claim import writes_output
from ._options import CACHE_FILE, add_format_options, run_options
from .analyze import add_analysis_options, analysis_parts, load_parts, print_notes

SPEC_HELP = (
    "local:MODEL, embedded, embedded:gemma3-270m, http(s)://HOST (TGI), openai+http(s)://HOST/v1, or column:NAME (instructions already evolved, one round)"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare-evolvers", help="evolve the same seeds with several evolvers and compare them", description=__doc__)
    p.add_argument("--dataset", default=BUILTIN_SAMPLE, help=f"the seeds: a file, a folder, a Hub id or {BUILTIN_SAMPLE!r} (default)")
    p.add_argument("--split", default="train")
    p.add_argument("--instruction-column", default="instruction")
    p.add_argument("--limit", type=int, default=None, help="use only the first N seeds")
    p.add_argument("--evolver", action="append", required=True, metavar="[LABEL=]SPEC", help=f"{SPEC_HELP}; give two or more")
    p.add_argument("--rounds", type=int, default=3, help="evolution rounds per evolver (default: 3)")
    p.add_argument("--no-breadth", action="store_true", help="drop the breadth operation (for math and code data)")
    p.add_argument("--no-elimination", action="store_true", help="keep failed evolutions as ok")
    p.add_argument("--temperature", type=float, default=0.7, help="evolution temperature, 0 for greedy (default: 0.7)")
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-new-tokens", type=int, default=256, help="per evolution and per response (default: 256)")
    p.add_argument("--responder", default=None, metavar="SPEC", help="one responder for every evolver (a generator spec); without it there is no IC-IFD")
    p.add_argument("--scorer", default="embedded", metavar="MODEL", help="the IC-IFD scoring model, local (default: embedded); used with --responder")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder: one config per evolver and round, evolvers.csv/.md, the plots, hfevol_run.json")
    add_format_options(p)
    add_analysis_options(p)
    p.set_defaults(run=run)


def parse_evolvers(texts: list[str]) -> list[Any]:
    """The evolver specs, checked: two or more, distinct labels."""
    from ..car.generators import parse_generator

    specs = [parse_generator(t) for t in texts or []]
    if len(specs) < 2:
        raise ConfigError(
            f"compare-evolvers needs two or more --evolver, got {len(specs)}",
            hint="add another, e.g. --evolver embedded --evolver embedded:gemma3-270m; for one evolver use hfevol evolve and hfevol analyze.",
        )
    seen: set[str] = set()
    for spec in specs:
        if spec.label in seen:
            raise ConfigError(f"two evolvers are labelled {spec.label!r}", hint="name them: --evolver NAME=SPEC.")
        seen.add(spec.label)
    return specs


def _column_evolver(seeds: Any, column: str) -> Any:
    """A ``column:NAME`` evolver: the column holds round-1 evolved instructions (rows without one are ``failed``)."""
    from ..validation import require_columns, text_problem

    require_columns(seeds.column_names, column)
    texts = seeds[column]
    ok = [text_problem(t) is None for t in texts]
    ds = seeds.remove_columns([c for c in ("instruction",) if c in seeds.column_names and c != column])
    ds = ds.add_column("parent_instruction", list(seeds["instruction"])) if "instruction" in seeds.column_names else ds
    ds = ds.add_column("instruction", [t if good else None for t, good in zip(texts, ok)]) if column != "instruction" else ds
    ds = ds.add_column("evol_status", ["ok" if good else "failed" for good in ok])
    ds = ds.add_column("evol_reason", [None if good else f"column {column!r} has no instruction" for good in ok])
    return ds.add_column("round", [1] * len(ds))


def _evolve(spec: Any, seeds: Any, args: argparse.Namespace, out: Path) -> tuple[Any, dict[str, Any]]:
    from ..backends.base import SamplingParams
    from ..backends.endpoint import EndpointBackend
    from ..cache import CachedBackend
    from ..car.generators import backend_for, sampling_for
    from ..evolution import ALL_OPERATIONS, BREADTH_OPERATION, Elimination, EvolInstruct
    from ..evolution.rounds import evolve_rounds, round_report

    if spec.kind == "column":
        return _column_evolver(seeds, spec.target), {"stage": "column", "column": spec.target}
    backend = backend_for(spec, batch_size=args.batch_size)
    if isinstance(backend, EndpointBackend):
        backend.check()  # unreachable or wrong server: one line, before any row
    backend = CachedBackend(backend, str(out / CACHE_FILE))
    sampling = sampling_for(spec, SamplingParams(temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens))
    operations = tuple(op for op in ALL_OPERATIONS if not (args.no_breadth and op == BREADTH_OPERATION))
    evolver = EvolInstruct(backend=backend, sampling=sampling, seed=args.seed, operations=operations)
    elimination = None if args.no_elimination else Elimination()
    evolver.backend.describe()
    batch = 64 if spec.kind == "endpoint" else max(args.batch_size, 1) * 2
    evolved = evolve_rounds(seeds, evolver, args.rounds, elimination=elimination, batch_size=batch)
    return evolved, {**evolver.metadata(), "elimination": elimination.metadata() if elimination else None, "report": round_report(evolved)}


def _respond_and_score(evolved: Any, responder: Any, score: Any, args: argparse.Namespace, label: str) -> tuple[Any, dict[str, Any]]:
    from ..backends.base import GREEDY, SamplingParams
    from ..respond import Respond
    from ..transform import map_rows

    spec, backend = responder
    sampling = SamplingParams(**{**GREEDY.to_dict(), "max_new_tokens": args.max_new_tokens})
    respond = Respond(backend=backend, sampling=sampling, seed=args.seed)
    fn = respond.acall if spec.kind == "endpoint" else respond
    if "output" in evolved.column_names:
        evolved = evolved.remove_columns(["output"])
    answered = map_rows(
        evolved,
        fn,
        respond.output_features(),
        with_indices=True,
        batch_size=64 if spec.kind == "endpoint" else args.batch_size * 2,
        desc=f"Responding ({label})",
    )
    scored = answered.map(score, batched=True, batch_size=args.batch_size * 16, with_indices=True, desc=f"Scoring IC-IFD ({label})")
    return scored, {"respond": respond.metadata(), "score": score.metadata()}


@writes_output()
def run(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..analysis import compare
    from ..analysis.analyze import analyze, round_summary
    from ..backends.endpoint import EndpointBackend
    from ..cache import CachedBackend
    from ..car.generators import backend_for, parse_generator
    from ..io import round_configs, write_output
    from .evolve import load_seeds

    specs = parse_evolvers(args.evolver)
    if args.rounds < 1:
        raise ConfigError(f"--rounds {args.rounds} must be at least 1")
    embedder, judge, reward = analysis_parts(args)
    out = Path(args.out)
    responder = score = None
    if args.responder:
        spec = parse_generator(args.responder)
        if spec.kind == "column":
            raise ConfigError(f"--responder {args.responder!r} must be a model or an endpoint, not a column")
        backend = backend_for(spec, batch_size=args.batch_size)
        if isinstance(backend, EndpointBackend):
            backend.check()
        responder = (spec, CachedBackend(backend, str(out / CACHE_FILE)))
        from ..scoring import Score

        score = Score(model=args.scorer, batch_size=args.batch_size)
    seeds = load_seeds(args)
    load_parts(embedder, judge, reward)  # every model loads (or fails) before the first evolution
    if score is not None:
        score.metadata()
    started = time.perf_counter()
    analysed: dict[str, Any] = {}
    stages: dict[str, Any] = {}
    infos: dict[str, Any] = {}
    for spec in specs:
        evolved, stage = _evolve(spec, seeds, args, out)
        if responder is not None:
            evolved, more = _respond_and_score(evolved, responder, score, args, spec.label)
            stage = {**stage, **more}
        analysed[spec.label], infos[spec.label] = analyze(
            evolved, embedder=embedder, judge=judge, reward=reward, form=args.mnd_form, block=args.mnd_block, strict=False
        )
        stages[spec.label] = stage
    seconds = time.perf_counter() - started
    summaries = {label: round_summary(ds) for label, ds in analysed.items()}
    configs = {f"{label}_{name}": part for label, ds in analysed.items() for name, part in (round_configs(ds) or {"round_1": ds}).items()}
    record = {
        "hfevol_version": __version__,
        "commands": [{"command": "compare-evolvers", "options": run_options(args)}],
        "source": args.dataset,
        "seed_rows": len(seeds),
        "rows": sum(len(ds) for ds in analysed.values()),
        "evolvers": {s.label: s.describe() for s in specs},
        "stages": [{"stage": "compare_evolvers", "evolvers": stages, "analysis": infos}],
        "comparison": {"rounds": summaries, "files": list(compare.COMPARISON_FILES)},
    }
    written: dict[str, Path] = {}
    write_output(configs, out, record, extra=lambda folder: written.update(compare.write(analysed, folder)))
    print(f"\n== compare-evolvers: {len(specs)} evolvers, {len(seeds)} seeds, {args.rounds} round(s), {seconds:.1f} s")
    for label, info in infos.items():
        print_notes(label, info)
    print()
    print(compare.markdown(compare.table_rows(summaries)))
    print()
    for kind, path in written.items():
        print(f"   {kind:<10} {out / Path(path).name}")
    print(f"   output     {out}")
    return 0
