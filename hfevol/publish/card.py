"""The dataset card: metadata through ``huggingface_hub.DatasetCardData``, body from ``cards/``.

Each body section appears only when its data exists (see the package docstring for the
columns and files each one reads).
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
from .source import SCORE_COLUMNS, ReleaseSource

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


@dataclass
class CardOptions:
    """What the data cannot tell: license, languages, title. ``None`` takes the run record's value."""

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


def seed_name(source: Any) -> str | None:
    """How the card names the seed data: a Hub id as is, a local path by its file name only."""
    if not isinstance(source, str) or not source:
        return None
    if source == "builtin":
        return "hfevol built-in seed sample"
    return source if _HUB_ID.match(source) and not Path(source).exists() else Path(source).name


def card_data(source: ReleaseSource, options: CardOptions, repo_id: str | None) -> "DatasetCardData":
    from huggingface_hub import DatasetCardData

    run = source.run
    seed = run.get("source")
    configs = []
    for name, splits in source.configs.items():
        entry: dict[str, Any] = {
            "config_name": name,
            "data_files": [{"split": split, "path": [f.path_in_repo for f in files] if len(files) > 1 else files[0].path_in_repo} for split, files in splits.items()],
        }
        if len(source.configs) > 1 and name == source.default_config:
            entry["default"] = True
        configs.append(entry)
    rows = max(source.config_rows(c) for c in source.configs)
    tags = ["hfevol", "synthetic", "instruction-tuning", *(s.get("stage") for s in run["stages"] if isinstance(s, dict) and s.get("stage"))]
    tags += [*run.get("tags", []), *options.tags]
    return DatasetCardData(
        license=options.license or run.get("license") or "unknown",
        language=options.language or run.get("language") or ["en"],
        task_categories=["text-generation", "question-answering"],
        size_categories=[size_category(rows)],
        source_datasets=[seed] if isinstance(seed, str) and _HUB_ID.match(seed) and not Path(seed).exists() else ["original"],
        pretty_name=_title(source, options, repo_id),
        tags=list(dict.fromkeys(t.replace("_", "-") for t in tags if isinstance(t, str))),
        configs=configs,
    )


def _title(source: ReleaseSource, options: CardOptions, repo_id: str | None) -> str:
    return options.pretty_name or source.run.get("pretty_name") or (repo_id.split("/")[1] if repo_id else source.folder.name)


def score_columns(source: ReleaseSource, table: "pa.Table") -> list[str]:
    """Numeric columns to summarise: known names, ``*_score``, and those a stage lists."""
    import pyarrow.types as pt

    declared = {c for s in source.run["stages"] if isinstance(s, dict) for c in s.get("score_columns", [])}
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


def _stages(run: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for stage in run["stages"]:
        if not isinstance(stage, dict):
            continue
        backend = stage.get("backend") if isinstance(stage.get("backend"), dict) else {}
        model = backend.get("served_model") or backend.get("model") or "-"
        details = []
        if stage.get("round") is not None:
            details.append(f"round {stage['round']}")
        if stage.get("operations"):
            details.append("operations: " + ", ".join(map(str, stage["operations"])))
        sampling = stage.get("sampling")
        if isinstance(sampling, dict):
            details.append("sampling: " + ", ".join(f"{k}={v}" for k, v in sampling.items() if v not in ([], None)))
        if stage.get("seed") is not None:
            details.append(f"seed {stage['seed']}")
        out.append({"stage": str(stage.get("stage", "-")), "model": f"`{model}`", "backend": str(backend.get("backend") or backend.get("kind") or "-"),
                    "details": "; ".join(details).replace("|", "\\|") or "-"})  # fmt: skip
    return out


def _eliminations(source: ReleaseSource) -> list[dict[str, Any]]:
    out = []
    for config in source.configs:
        table = source.table(config)
        for name in table.column_names:
            if not name.endswith("_status"):
                continue
            statuses = table.column(name).to_pylist()
            if not all(isinstance(s, str) or s is None for s in statuses):
                continue
            reason_col = name[: -len("_status")] + "_reason"
            reasons: Counter[str] = Counter()
            if reason_col in table.column_names:
                for status, reason in zip(statuses, table.column(reason_col).to_pylist(), strict=True):
                    if status != "ok" and reason:
                        reasons[_one_line(str(reason), 160)] += 1
            out.append({"config": config, "column": name, "counts": Counter(str(s) for s in statuses).most_common(), "reasons": reasons.most_common(_REASONS)})
    return out


def _scores(source: ReleaseSource) -> list[dict[str, Any]]:
    out = []
    for config in source.configs:
        table = source.table(config)
        for column in score_columns(source, table):
            values = numbers(table, column)
            if values:
                out.append({"config": config, "column": column, "n": len(values), "mean": statistics.fmean(values),
                            "median": statistics.median(values), "min": min(values), "max": max(values)})  # fmt: skip
    return out


def _examples(source: ReleaseSource) -> list[dict[str, Any]]:
    """A few evolved rows of the default config, ``ok`` ones first. ``response`` is shown when a
    responder stage wrote it (``output`` is the seed's answer to the *old* instruction: not shown)."""
    table = source.table()
    names = table.column_names
    if "evolved_instruction" not in names:
        return []
    before = "parent_instruction" if "parent_instruction" in names else "instruction" if "instruction" in names else None
    rows = [r for r in table.slice(0, 500).to_pylist() if r.get("evolved_instruction")]
    rows.sort(key=lambda r: r.get("evol_status", "ok") != "ok")
    return [
        {
            "before": _block(row.get(before) if before else None),
            "after": _block(row["evolved_instruction"]),
            "response": _block(row["response"]) if row.get("response") else None,
            "operation": row.get("evol_operation"),
            "status": row.get("evol_status", "ok"),
        }
        for row in rows[:_EXAMPLES]
    ]


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


def render_card(
    source: ReleaseSource,
    options: CardOptions,
    *,
    repo_id: str | None,
    version: str,
    earlier: list[str],
    plots: dict[str, str],
) -> "DatasetCard":
    """The card of release ``version``. ``plots`` maps a score column to its PNG's path in the repo."""
    from huggingface_hub import DatasetCard

    data = card_data(source, options, repo_id)
    configs = [
        {"name": name, "default": name == source.default_config and len(source.configs) > 1,
         "splits": [{"name": split, "rows": sum(f.rows for f in files), "paths": [f.path_in_repo for f in files]} for split, files in splits.items()]}
        for name, splits in source.configs.items()
    ]  # fmt: skip
    car = next(iter(source.tables.items()), None)
    context = {
        "title": _title(source, options, repo_id),
        "seed": seed_name(source.run.get("source")),
        "rows_total": max(source.config_rows(c) for c in source.configs),
        "configs": configs,
        "default_config": source.default_config,
        "version": version,
        "earlier": earlier,
        "repo_id": repo_id,
        "load_id": repo_id or "path/to/this/folder",
        "hfevol_version": source.run.get("hfevol_version", "?"),
        "stages": _stages(source.run),
        "eliminations": _eliminations(source),
        "scores": _scores(source),
        "plots": [{"column": c, "path": p} for c, p in plots.items()],
        "car_table": car_table_markdown(car[1]) if car else None,
        "car_file": car[0] if car else None,
        "examples": _examples(source),
        **flag_sections(source.run),  # the dedup / contamination section (hfevol.dedup.card)
    }
    return DatasetCard.from_template(data, template_path=str(shipped_dir("cards") / TEMPLATE), **context)
