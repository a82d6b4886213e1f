"""Per-row evolver analyses of an evolved dataset, and their per-round summary.

:func:`analyze` adds, to the rows whose evolution is ``ok`` (the others keep None):

- ``mnd`` (float), ``mnd_neighbour`` (str, the nearest row's ``id``), ``near_duplicates``
  (int): diversity within the row's round (:mod:`.mnd`), over ``instruction + "\\n" + input``;
- ``difficulty_level`` / ``difficulty_score`` / ``difficulty_expected`` from a judge (:mod:`.difficulty`);
- ``instruction_reward`` from a reward model (:mod:`.reward`).

Columns already present are read, not recomputed: ``ic_ifd`` and ``ifd`` (``hfevol score``)
and the top-1 probabilities recorded during evolution (``top1_mean_k``, ``top1_mean_all``,
``top1_positions``). :func:`round_summary` reduces everything per round; a measure whose
columns are absent is listed under ``absent``.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..errors import DataError
from .difficulty import LEVELS

TOP1_COLUMNS: tuple[str, ...] = ("top1_mean_k", "top1_mean_all", "top1_positions")
READ_COLUMNS: tuple[str, ...] = ("ic_ifd", "ifd", *TOP1_COLUMNS)
ANALYSIS_COLUMNS: tuple[str, ...] = (
    "mnd",
    "mnd_neighbour",
    "near_duplicates",
    "difficulty_level",
    "difficulty_score",
    "difficulty_expected",
    "instruction_reward",
)
MEAN_COLUMNS: tuple[str, ...] = (
    "mnd",
    "difficulty_score",
    "difficulty_expected",
    "instruction_reward",
    "ic_ifd",
    "ifd",
    "top1_mean_k",
    "top1_mean_all",
    "length_words",
)


def check_evolved(columns: Sequence[str], source: str = "the dataset") -> None:
    """An evolved dataset has ``instruction`` and ``evol_status`` (written by ``hfevol evolve``).

    Raises:
        DataError: either column is absent.
    """
    missing = [c for c in ("instruction", "evol_status") if c not in columns]
    if missing:
        raise DataError(
            f"{source} has no evolved instructions (no column {' or '.join(repr(c) for c in missing)})",
            hint="analyse the output folder of hfevol evolve (or respond/score on top of it).",
        )


def analysed_rows(ds: Any) -> list[int]:
    """Rows whose evolution is ``ok`` and whose instruction is a non-empty string."""
    statuses, texts = ds["evol_status"], ds["instruction"]
    return [i for i, (s, t) in enumerate(zip(statuses, texts)) if s == "ok" and isinstance(t, str) and t.strip()]


def _rounds(ds: Any) -> list[int]:
    return [int(r) for r in ds["round"]] if "round" in ds.column_names else [1] * len(ds)


def analyze(
    ds: Any,
    *,
    embedder: Any = None,
    judge: Any = None,
    reward: Any = None,
    form: str = "squared_l2",
    block: int = 1024,
    progress: bool = True,
    strict: bool = True,
) -> tuple[Any, dict[str, Any]]:
    """The dataset with the analysis columns, and what was measured (``notes``, counts, descriptions).

    With ``strict=False`` (``compare-evolvers``, where one evolver's poor result must not
    lose the others' work) no ``ok`` row, or no round with 2, is a note and None values
    instead of an error.

    Raises:
        DataError: no evolved instructions (:func:`check_evolved`); with ``strict``, no ``ok``
            row, or, with an embedder, no round with 2 or more ``ok`` rows (MND needs a neighbour).
    """
    from .mnd import NEAR_DUPLICATE, min_neighbour_distance

    check_evolved(ds.column_names)
    rows = analysed_rows(ds)
    if not rows and not strict:
        return ds, {
            "analysed_rows": 0,
            "rows": len(ds),
            "notes": [f"none of the {len(ds)} rows has an evolved instruction with evol_status 'ok': nothing to analyse"],
        }
    if not rows:
        raise DataError(
            f"none of the {len(ds)} rows has an evolved instruction with evol_status 'ok'",
            hint="check the evolution's statuses (hfevol retry-failed, or evolve again).",
        )
    n = len(ds)
    rounds = _rounds(ds)
    texts = ds["instruction"]
    inputs = ds["input"] if "input" in ds.column_names else [None] * n
    ids = ds["id"] if "id" in ds.column_names else [str(i) for i in range(n)]
    new: dict[str, list[Any]] = {}
    info: dict[str, Any] = {"analysed_rows": len(rows), "rows": n, "notes": []}
    if embedder is not None:
        from .embed import row_text

        by_round: dict[int, list[int]] = {}
        for i in rows:
            by_round.setdefault(rounds[i], []).append(i)
        if strict and all(len(members) < 2 for members in by_round.values()):
            raise DataError(
                f"MND needs at least 2 ok rows in a round; the rounds have {', '.join(f'round {r}: {len(m)}' for r, m in sorted(by_round.items()))}",
                hint="evolve more seeds (--limit), or analyse without --embedder.",
            )
        vectors = embedder.encode([row_text(texts[i], inputs[i]) for i in rows], progress=progress)
        position = {row: k for k, row in enumerate(rows)}
        new["mnd"], new["mnd_neighbour"], new["near_duplicates"] = [None] * n, [None] * n, [None] * n
        for r, members in sorted(by_round.items()):
            if len(members) < 2:
                info["notes"].append(f"round {r}: 1 ok row, so no MND (it has no neighbour)")
                continue
            result = min_neighbour_distance(vectors[[position[i] for i in members]], form=form, block=block)  # type: ignore[arg-type]
            for k, i in enumerate(members):
                new["mnd"][i] = float(result.distance[k])
                new["mnd_neighbour"][i] = str(ids[members[int(result.neighbour[k])]])
                new["near_duplicates"][i] = int(result.near_duplicates[k])
        info["embedder"] = embedder.describe()
        info["mnd"] = {
            "form": form,
            "near_duplicate_threshold": NEAR_DUPLICATE,
            "near_duplicate_form": "squared_l2",
            "scope": "within each round",
            "block": block,
        }
    if judge is not None:
        reading = judge.judge([texts[i] for i in rows], progress=progress)
        for column, values in reading.columns.items():
            full: list[Any] = [None] * n
            for i, v in zip(rows, values):
                full[i] = v
            new[column] = full
        info["judge"] = judge.describe()
        info["judge_unparsed"], info["judge_failed"], info["judge_examples"] = reading.unparsed, reading.failed, reading.examples
    if reward is not None:
        parents = ds["parent_instruction"] if "parent_instruction" in ds.column_names else [None] * n
        operations = ds["evol_operation"] if "evol_operation" in ds.column_names else [None] * n
        values, no_prompt = reward.score([parents[i] for i in rows], [operations[i] for i in rows], [texts[i] for i in rows])
        full = [None] * n
        for i, v in zip(rows, values):
            full[i] = v
        new["instruction_reward"] = full
        info["reward"] = reward.describe()
        if no_prompt:
            info["notes"].append(f"instruction reward: {no_prompt} row(s) without a rebuildable Evol-Instruct prompt (None)")
    absent = [c for c in READ_COLUMNS if c not in ds.column_names]
    if any(c in absent for c in TOP1_COLUMNS):
        info["notes"].append("no top-1 probability columns (top1_mean_k, top1_mean_all): this evolution did not record them")
    if "ic_ifd" in absent:
        info["notes"].append("no ic_ifd column: run hfevol respond and hfevol score first to include IC-IFD")
    return _with_columns(ds, new), info


def _with_columns(ds: Any, new: dict[str, list[Any]]) -> Any:
    from datasets import Value

    types = {"mnd": "float64", "mnd_neighbour": "string", "near_duplicates": "int64", "difficulty_level": "string",
             "difficulty_score": "float64", "difficulty_expected": "float64", "instruction_reward": "float64"}  # fmt: skip
    stale = [c for c in new if c in ds.column_names]
    if stale:
        ds = ds.remove_columns(stale)  # a second analysis replaces the first one's columns
    for column, values in new.items():
        ds = ds.add_column(column, values, feature=Value(types[column]))
    return ds


def _finite(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and isinstance(v, (int, float)) and math.isfinite(v)]


def describe_values(values: Sequence[Any]) -> dict[str, Any]:
    """Count, mean, median, quartiles, min and max of the finite values (None when there are none)."""
    kept = sorted(_finite(values))
    if not kept:
        return {"n": 0, "mean": None, "median": None, "q1": None, "q3": None, "min": None, "max": None}
    q = statistics.quantiles(kept, n=4, method="inclusive") if len(kept) > 1 else [kept[0]] * 3
    return {"n": len(kept), "mean": statistics.fmean(kept), "median": q[1], "q1": q[0], "q3": q[2], "min": kept[0], "max": kept[-1]}


def round_summary(ds: Any) -> dict[int, dict[str, Any]]:
    """Per round: rows, statuses, elimination rules, and the distribution of every measure over its ok rows."""
    rounds = _rounds(ds)
    columns = ds.column_names
    data = {c: ds[c] for c in (*MEAN_COLUMNS, "evol_status", "elimination_rule", "instruction", "near_duplicates") if c in columns}
    data["length_words"] = [len(t.split()) if isinstance(t, str) else None for t in ds["instruction"]]
    ok = set(analysed_rows(ds))
    out: dict[int, dict[str, Any]] = {}
    for r in sorted(set(rounds)):
        members = [i for i, x in enumerate(rounds) if x == r]
        kept = [i for i in members if i in ok]
        entry: dict[str, Any] = {
            "rows": len(members),
            "ok": len(kept),
            "survival": len(kept) / len(members) if members else None,
            "status": dict(Counter(data["evol_status"][i] for i in members)),
            "eliminated": dict(Counter(data["elimination_rule"][i] for i in members if data["elimination_rule"][i])) if "elimination_rule" in data else {},
        }
        for column in MEAN_COLUMNS:
            if column in data:
                entry[column] = describe_values([data[column][i] for i in kept])
        measured = [data["near_duplicates"][i] for i in kept if data["near_duplicates"][i] is not None] if "near_duplicates" in data else []
        if measured:  # a round without MND (fewer than 2 ok rows) has no near-duplicate count either
            entry["rows_with_near_duplicates"] = sum(1 for n in measured if n > 0)
        if "difficulty_level" in columns:
            levels = ds["difficulty_level"]
            counts = Counter(levels[i] for i in kept)
            entry["difficulty_levels"] = {level: counts.get(level, 0) for level in LEVELS}
            entry["difficulty_unparsed"] = counts.get(None, 0)
        out[r] = entry
    return out
