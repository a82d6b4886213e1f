"""The dataset card: metadata through ``huggingface_hub.DatasetCardData``, body from ``cards/``.

:func:`build_view` reads the release once (the typed run record, the configs, counts, score
summaries, examples and the plots to draw) into a :class:`ReleaseView`; :func:`render_card`
renders that view with the template. Each body section appears only when its data exists
(see the package docstring for the columns and files each one reads).
"""

from __future__ import annotations

import csv
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..dedup.card import flag_sections
from ..paths import shipped_dir
from ..record import DataRef, RunRecord, StageRecord
from .source import CAR_TABLES, SCORE_COLUMNS, ReleaseSource, status_columns

if TYPE_CHECKING:
    import pyarrow as pa
    from huggingface_hub import DatasetCard, DatasetCardData

TEMPLATE = "dataset_card.md.jinja"
_SIZE_STEPS = ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"), (10**7, "1M<n<10M"),
               (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"), (10**11, "10B<n<100B"), (10**12, "100B<n<1T"))  # fmt: skip
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_EXAMPLES = 3
_EXAMPLE_CHARS = 700
_REASONS = 5
LOCAL_PLACEHOLDER = "path/to/this/folder"
"""How a card names a local release folder (never by its real path)."""


@dataclass
class CardOptions:
    """What the data cannot tell: license, languages, title (the run record does not hold them)."""

    license: str | None = None
    language: list[str] | None = None
    pretty_name: str | None = None
    tags: list[str] = field(default_factory=list)


def size_category(rows: int) -> str:
    """The Hub's ``size_categories`` bucket for ``rows``."""
    for limit, name in _SIZE_STEPS:
        if rows < limit:
            return name
    return "n>1T"


def seed_name(seed: DataRef | None) -> str | None:
    """How the card names the seed data (the first stage's input): a Hub id as is, a local file by its name only."""
    if seed is None:
        return None
    if seed.name == "builtin" or seed.name.startswith("builtin:"):
        return "hfevol built-in seed sample" + (f" ({seed.name.split(':', 1)[1]})" if ":" in seed.name else "")
    return seed.name


def _hub_seed(seed: DataRef | None) -> str | None:
    return seed.name if seed is not None and seed.path is None and _HUB_ID.match(seed.name) else None


@dataclass(frozen=True)
class Plot:
    """A score distribution to draw: ``path`` in the repo, the config and column, and its values."""

    path: str
    config: str
    column: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class ReleaseView:
    """Everything the card shows, read once from the release (:func:`build_view`)."""

    source: ReleaseSource
    options: CardOptions
    repo_id: str | None
    version: str
    earlier: list[str]
    title: str
    configs: list[dict[str, Any]]
    default_config: str
    default_reason: str
    stages: list[dict[str, str]]
    eliminations: list[dict[str, Any]]
    scores: list[dict[str, Any]]
    plots: list[Plot]
    examples: list[dict[str, Any]]
    rows_total: int
    local: bool = False
    """Made in a local release folder: the card also says how to load this version there."""
    autoif: Any = None
    """The AutoIF section (:class:`hfevol.autoif.card.AutoIFSection`) when ``hfevol autoif`` made the data."""


def card_data(view: ReleaseView) -> "DatasetCardData":
    from huggingface_hub import DatasetCardData

    source, run = view.source, view.source.run
    configs = []
    for name, splits in source.configs.items():
        entry: dict[str, Any] = {
            "config_name": name,
            "data_files": [
                {"split": split, "path": [f.path_in_repo for f in files] if len(files) > 1 else files[0].path_in_repo} for split, files in splits.items()
            ],
        }
        if len(source.configs) > 1 and name == view.default_config:
            entry["default"] = True
        configs.append(entry)
    tags = ["hfevol", "synthetic", "instruction-tuning", *(s.stage for s in run.stages), *view.options.tags]
    hub_seed = _hub_seed(run.seed_data)
    return DatasetCardData(
        license=view.options.license or "unknown",
        language=view.options.language or ["en"],
        task_categories=["text-generation", "question-answering"],
        size_categories=[size_category(view.rows_total)],
        source_datasets=[hub_seed] if hub_seed else ["original"],
        pretty_name=view.title,
        tags=list(dict.fromkeys(t.replace("_", "-") for t in tags)),
        configs=configs,
    )


def score_columns(run: RunRecord, table: "pa.Table") -> list[str]:
    """Numeric columns to summarise: known names, ``*_score``, and those a stage lists in ``score_columns``."""
    import pyarrow.types as pt

    declared = {c for s in run.stages for c in s.settings.get("score_columns", ())}
    out = []
    for name in table.column_names:
        kind = table.schema.field(name).type
        numeric = (pt.is_floating(kind) or pt.is_integer(kind)) and not pt.is_boolean(kind)
        if numeric and (name in SCORE_COLUMNS or name.endswith("_score") or name in declared):
            out.append(name)
    return out


def numbers(table: "pa.Table", column: str) -> list[float]:
    """The finite values of a numeric column (missing and NaN values left out)."""
    return [float(v) for v in table.column(column).to_pylist() if v is not None and math.isfinite(v)]


def _short_value(value: Any) -> str | None:
    """A setting as the stage table shows it, or None when it is too long or nested to show."""
    if isinstance(value, (bool, int, float)):
        return str(value)
    if isinstance(value, str):
        return value if len(value) <= 40 else None
    if isinstance(value, list) and value and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(map(str, value))
    return None


def _stage_row(stage: StageRecord) -> dict[str, str]:
    b = stage.backend
    model = b.served_model or b.model
    cell = f"`{model}`" + (f" (revision `{b.revision[:12]}`)" if b.revision else "") if model else "-"
    details = [f"{k}: {shown}" for k, v in stage.settings.items() if (shown := _short_value(v)) is not None]
    if stage.sampling:
        details.append("sampling: " + ", ".join(f"{k}={v}" for k, v in stage.sampling.items() if v not in ([], None)))
    if stage.seed is not None:
        details.append(f"seed {stage.seed}")
    if stage.input is not None:
        details.append(f"read {stage.input.rows} rows")
    if stage.counts:
        details.append("rows by status: " + ", ".join(f"{k} {n}" for k, n in stage.counts.items()))
    return {"stage": stage.stage, "model": cell, "backend": b.kind, "details": "; ".join(details).replace("|", "\\|") or "-"}


def _eliminations(source: ReleaseSource) -> list[dict[str, Any]]:
    out = []
    for config in source.configs:
        table = source.table(config)
        for name in status_columns(table):
            statuses = table.column(name).to_pylist()
            reason_col = name[: -len("_status")] + "_reason"
            reasons: Counter[str] = Counter()
            if reason_col in table.column_names:
                for status, reason in zip(statuses, table.column(reason_col).to_pylist(), strict=True):
                    if status != "ok" and reason:
                        reasons[_one_line(str(reason), 160)] += 1
            out.append({"config": config, "column": name, "counts": Counter(str(s) for s in statuses).most_common(), "reasons": reasons.most_common(_REASONS)})
    return out


def _scores(source: ReleaseSource) -> tuple[list[dict[str, Any]], list[Plot]]:
    """Summary statistics of every score column of every config, and a plot of each."""
    out, plots = [], []
    several = len(source.configs) > 1
    for config in source.configs:
        table = source.table(config)
        for column in score_columns(source.run, table):
            values = numbers(table, column)
            if values:
                out.append({"config": config, "column": column, "n": len(values), "mean": statistics.fmean(values),
                            "median": statistics.median(values), "min": min(values), "max": max(values)})  # fmt: skip
                plots.append(Plot(f"plots/{config}/{column}.png" if several else f"plots/{column}.png", config, column, tuple(values)))
    return out, plots


def _response_column(run: RunRecord) -> str | None:
    """The column the last responder wrote (``output`` by default)."""
    for stage in reversed(run.stages):
        if stage.stage == "respond":
            return str(stage.settings.get("output_column", "output"))
    return None


def _examples(source: ReleaseSource, config: str) -> list[dict[str, Any]]:
    """A few evolved rows of ``config``, kept rows (every status ``ok``) first. The response is shown
    when a responder stage wrote it (``output`` otherwise holds the seed's answer to the *old* instruction)."""
    table = source.table(config)
    names = table.column_names
    if "evolved_instruction" not in names:
        return []
    before = "parent_instruction" if "parent_instruction" in names else "instruction" if "instruction" in names else None
    answer = _response_column(source.run)
    statuses = status_columns(table)
    rows = [r for r in table.slice(0, 500).to_pylist() if r["evolved_instruction"]]
    rows.sort(key=lambda r: not all(r[c] == "ok" for c in statuses))
    return [
        {
            "before": _block(row[before] if before else None),
            "after": _block(row["evolved_instruction"]),
            "response": _block(row[answer]) if answer in names and row[answer] else None,
            "operation": row["evol_operation"] if "evol_operation" in names else None,
            "status": next((f"{c} {row[c]}" for c in statuses if row[c] != "ok"), "ok"),
        }
        for row in rows[:_EXAMPLES]
    ]


def build_view(source: ReleaseSource, options: CardOptions, *, repo_id: str | None, version: str, earlier: list[str], local: bool = False) -> ReleaseView:
    """Read the release once into what the card shows."""
    default = source.default_config
    if len(source.configs) == 1:
        reason = ""
    elif source.run.default_config == default:
        reason = "the run record names it"
    else:
        reason = f"it holds the most kept rows ({source.kept_rows(default)} of {source.config_rows(default)} with every status `ok`)"
    configs = [
        {"name": name, "default": name == default and len(source.configs) > 1, "kept": source.kept_rows(name),
         "splits": [{"name": split, "rows": sum(f.rows for f in files), "paths": [f.path_in_repo for f in files]} for split, files in splits.items()]}
        for name, splits in source.configs.items()
    ]  # fmt: skip
    scores, plots = _scores(source)
    from ..autoif.card import autoif_section

    autoif = autoif_section(source.run.extras, source.table(default))
    title = options.pretty_name or (repo_id.split("/")[1] if repo_id else source.folder.name)
    return ReleaseView(
        source=source, options=options, repo_id=repo_id, version=version, earlier=earlier, title=title, configs=configs,
        default_config=default, default_reason=reason, stages=[_stage_row(s) for s in source.run.stages],
        eliminations=_eliminations(source), scores=scores, plots=plots, examples=_examples(source, default),
        rows_total=max(source.config_rows(c) for c in source.configs), local=local, autoif=autoif,
    )  # fmt: skip


def _one_line(text: str, width: int) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def _block(text: Any) -> str:
    text = "-" if text is None else str(text).strip()
    text = text.replace("````", "'''")  # cannot close the fence it sits in
    return text if len(text) <= _EXAMPLE_CHARS else text[:_EXAMPLE_CHARS] + " …"


def car_table_markdown(path: Path) -> str:
    """The CAR table as Markdown: a ``.md`` file as is, a ``.csv`` file converted."""
    if path.suffix == ".md":
        return path.read_text().strip()
    with path.open(newline="") as f:
        rows = [[cell.strip().replace("|", "\\|") for cell in row] for row in csv.reader(f) if row]
    if not rows:
        return ""
    header, body = rows[0], rows[1:]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row + [""] * (len(header) - len(row))) + " |" for row in body]
    return "\n".join(lines)


def _comparison(source: ReleaseSource) -> dict[str, Any] | None:
    """The evolver comparison of ``hfevol compare-evolvers``: its Markdown table and plots, when the folder has them."""
    table = source.tables.get("evolvers.md")
    if table is None:
        return None
    return {"table": table.read_text().strip(), "plots": [n for n in source.tables if n.endswith(".png") and n.startswith("evolver_")]}


def _token_rows(tokens: Any) -> list[dict[str, Any]]:
    """The record's ``tokens`` entry (per command, :mod:`hfevol.budget`) as rows for the card."""
    if not isinstance(tokens, dict):
        return []
    return [{"command": name, **t} for name, t in tokens.items() if isinstance(t, dict) and "prompt" in t]


def render_card(view: ReleaseView) -> "DatasetCard":
    """The card of the release ``view`` describes (its plots are drawn at ``Plot.path`` by the caller).

    ``view.local``: the card is made in a local release folder, so it also says how to load
    this version there. A card holds no local path (``publish --from`` pushes it to the Hub
    unchanged): it names the folder :data:`LOCAL_PLACEHOLDER`.
    """
    import json

    from huggingface_hub import DatasetCard

    from .local import checkout_command
    from .target import load_lines

    source, version, repo_id = view.source, view.version, view.repo_id
    names = list(source.configs)
    car = next(((n, p) for n, p in source.tables.items() if n in CAR_TABLES), None)
    context = {
        "title": view.title,
        "seed": seed_name(source.run.seed_data),
        "rows_total": view.rows_total,
        "configs": view.configs,
        "default_config": view.default_config,
        "default_reason": view.default_reason,
        "version": version,
        "earlier": view.earlier,
        "repo_id": repo_id,
        "load_hub": load_lines(json.dumps(repo_id), names, f", revision={json.dumps(version)}") if repo_id else (),
        "local": view.local or not repo_id,
        "load_latest": load_lines(json.dumps(LOCAL_PLACEHOLDER), names),
        "checkout": checkout_command(LOCAL_PLACEHOLDER, version, f"{LOCAL_PLACEHOLDER}-{version}"),
        "load_version": load_lines(json.dumps(f"{LOCAL_PLACEHOLDER}-{version}"), names),
        "hfevol_version": source.run.hfevol_version,
        "stages": view.stages,
        "tokens": _token_rows(source.run.extras.get("tokens")),
        "eliminations": view.eliminations,
        "scores": view.scores,
        "plots": [{"column": p.column, "config": p.config, "path": p.path} for p in view.plots],
        "car_table": car_table_markdown(car[1]) if car else None,
        "car_file": car[0] if car else None,
        "examples": view.examples,
        "autoif": view.autoif,
        "evolvers": _comparison(source),
        **flag_sections(source.run),  # the dedup / contamination section (hfevol.dedup.card)
    }
    return DatasetCard.from_template(card_data(view), template_path=str(shipped_dir("cards") / TEMPLATE), **context)
