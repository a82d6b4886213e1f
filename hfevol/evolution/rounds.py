"""Several evolution rounds with lineage: round ``r + 1`` evolves what round ``r`` produced."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, DataError, EmptyDatasetError, InvalidRowError
from ..transform import Batch, map_rows
from ..validation import require_columns
from .base import Evolver
from .elimination import Elimination

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

logger = logging.getLogger(__name__)

_FIRST_COLUMNS = ("id", "round", "parent_id", "root_id")
"""Lineage columns that lead the output, before the instruction, input and output."""


def evolve_rounds(
    seeds: "Dataset",
    evolver: Evolver,
    rounds: int = 1,
    *,
    elimination: Elimination | None = Elimination(),  # noqa: B008 - settings only, never changed after __post_init__
    batch_size: int = 16,
    index_offset: int = 0,
) -> "Dataset":
    """Evolve ``seeds`` for ``rounds`` rounds and return every round's rows in one dataset.

    Round 1 evolves every seed row; round ``r + 1`` evolves the rows of round ``r`` whose
    ``evol_status`` is ``ok``. A row that failed, was truncated or was eliminated is kept in
    its round, with its status and reason, and is not evolved further. ``evolver.round`` is
    replaced by each round's number, so the rotation ``ops[(i + r) % len(ops)]`` shifts by one
    each round, with ``i`` the seed row's index throughout (the paper's reference code).
    ``index_offset`` is the global index of ``seeds``' first row when ``seeds`` is one shard of
    a larger input (:mod:`hfevol.shards`): ids, ``root_index``, operations and seeds then come
    out as in the unsharded run. ``elimination`` (default: :class:`Elimination` with every rule) marks failed evolutions
    after each round; pass ``None`` to turn it off. A round that leaves no row to evolve ends
    the run early (logged; ``split_rounds`` then has fewer configs). Against an inference
    endpoint every row of a batch is in flight at once (:meth:`~hfevol.transform.RowTransform.map`).

    Input columns:
        - ``evolver.instruction_column``: the seed instruction.
        - ``id`` (optional): a unique row id; without it, ids ``row-000000``, ``row-000001`` ...
          are made from the row index.

    Output columns: the seed's columns (the instruction column holds the round's evolved
    instruction for ``ok`` rows and None otherwise; ``output``, if present, is set to None,
    since the seed's answer does not answer the evolved instruction), the evolver's columns
    (without ``evol_round``), ``elimination_rule``, and the lineage:
        - ``id`` (str): ``<root id>-r<round>``.
        - ``parent_id`` (str): the row it was evolved from (the seed's id in round 1).
        - ``root_id`` (str), ``root_instruction`` (str), ``root_index`` (int): the seed row.
        - ``round`` (int): 1, 2, ...

    Raises:
        ConfigError: ``rounds`` is not an integer >= 1.
        EmptyDatasetError: ``seeds`` has no rows.
        MissingColumnError: the instruction column is absent.
        InvalidRowError: an ``id`` is missing, or not a string or integer.
        DataError: two rows share an ``id``.
    """
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise ConfigError(f"rounds={rounds!r} must be an integer >= 1", hint="use 1 to 3 rounds, as in the paper.")
    if not isinstance(evolver, Evolver):
        raise ConfigError(f"evolver must be an hfevol Evolver (EvolInstruct, AutoEvolInstruct), got {type(evolver).__name__}")
    if len(seeds) == 0:
        raise EmptyDatasetError("the seed dataset has no rows", hint="check --dataset, --split and --limit.")
    column = evolver.instruction_column
    require_columns(seeds.column_names, column)
    current = _with_lineage_start(seeds, column, index_offset)
    produced = []
    for r in range(1, rounds + 1):
        step = replace(evolver, round=r, position_column="root_index")
        offset = index_offset if r == 1 else 0  # later rounds take positions from root_index
        out = step.map(current, batch_size=batch_size, desc=f"Evolving, round {r}/{rounds}", index_offset=offset)
        if elimination is not None:
            out = elimination.map(out, batch_size=1000, desc=f"Eliminating, round {r}")
        out = map_rows(
            out,
            _finish_round,
            _finish_features(out, column),
            fn_kwargs={"round_number": r, "column": column, "eliminate": elimination is not None},
            batch_size=1000,
            remove_columns=["evol_round"],
            desc=f"Lineage, round {r}",
        )
        produced.append(out)
        if r < rounds:
            current = out.filter(_is_ok, input_columns=["evol_status"], batched=True, batch_size=1000, desc=f"Rows to evolve in round {r + 1}")
            if len(current) == 0:
                logger.warning("round %d left no row with evol_status 'ok'; stopping after %d of %d rounds", r, r, rounds)
                break
    from datasets import concatenate_datasets

    result = concatenate_datasets(produced) if len(produced) > 1 else produced[0]
    first = [*_FIRST_COLUMNS, column, "input", "output"]
    order = [c for c in first if c in result.column_names] + [c for c in result.column_names if c not in first]
    return result.select_columns(order)


def split_rounds(ds: "Dataset") -> "DatasetDict":
    """One dataset per round, named ``round_1``, ``round_2`` ... (the output folder's configs, see :func:`hfevol.io.round_configs`)."""
    from ..io import round_configs

    require_columns(ds.column_names, "round")
    parts = round_configs(ds)
    assert parts is not None
    return parts


def round_report(ds: "Dataset", status_column: str = "evol_status") -> dict[str, Any]:
    """Rows, statuses and elimination rules per round, and the elimination totals (for summaries and the run record)."""
    columns = [c for c in ("round", status_column, "elimination_rule") if c in ds.column_names]
    per_round: dict[int, dict[str, Any]] = {}
    totals: Counter[str] = Counter()
    for batch in ds.select_columns(columns).iter(batch_size=1000):
        for k, status in enumerate(batch[status_column]):
            r = int(batch["round"][k]) if "round" in batch else 1
            entry = per_round.setdefault(r, {"rows": 0, "status": Counter(), "eliminated": Counter()})
            entry["rows"] += 1
            entry["status"][status] += 1
            rule = batch["elimination_rule"][k] if "elimination_rule" in batch else None
            if rule:
                entry["eliminated"][rule] += 1
                totals[rule] += 1
    return {
        "rounds": {r: {"rows": e["rows"], "status": dict(e["status"]), "eliminated": dict(e["eliminated"])} for r, e in sorted(per_round.items())},
        "eliminated": dict(totals),
    }


# -- map helpers (module-level so that datasets fingerprints them deterministically) ---------


def _with_lineage_start(seeds: "Dataset", column: str, index_offset: int = 0) -> "Dataset":
    from datasets import Value

    if "id" in seeds.column_names:
        _check_ids(seeds, index_offset)
    features = {"id": Value("string"), "root_id": Value("string"), "root_instruction": Value("string"), "root_index": Value("int64")}
    return map_rows(seeds, _start_lineage, features, fn_kwargs={"column": column}, with_indices=True, batch_size=1000, desc="Lineage, seeds",
                    index_offset=index_offset)  # fmt: skip


def _check_ids(seeds: "Dataset", index_offset: int = 0) -> None:
    seen: dict[str, int] = {}
    for start, batch in enumerate(seeds.select_columns(["id"]).iter(batch_size=1000)):
        for k, value in enumerate(batch["id"]):
            row = index_offset + start * 1000 + k
            if value is None or isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
                raise InvalidRowError(
                    row,
                    "id",
                    f"the id is {value!r}; ids must be non-empty strings or integers",
                    hint="fix the id, or drop the column to have ids made from row indices.",
                )
            key = str(value)
            if key in seen:
                raise DataError(
                    f"rows {seen[key]} and {row} share the id {key!r}", hint="ids must be unique; drop the column to have ids made from row indices."
                )
            seen[key] = row


def _start_lineage(batch: Batch, indices: list[int], column: str) -> Batch:
    ids = [str(v) for v in batch["id"]] if "id" in batch else [f"row-{i:06d}" for i in indices]
    return {"id": ids, "root_id": ids, "root_instruction": list(batch[column]), "root_index": list(indices)}


def _finish_features(ds: "Dataset", column: str) -> dict[str, Any]:
    from datasets import Value

    features = {"id": Value("string"), "parent_id": Value("string"), "round": Value("int64"), column: Value("string"), "elimination_rule": Value("string")}
    if "output" in ds.column_names and column != "output":
        features["output"] = Value("string")
    return features


def _finish_round(batch: Batch, round_number: int, column: str, eliminate: bool) -> Batch:
    n = len(batch["id"])
    ok = [s == "ok" for s in batch["evol_status"]]
    out: Batch = {
        "parent_id": list(batch["id"]),
        "id": [f"{root}-r{round_number}" for root in batch["root_id"]],
        "round": [round_number] * n,
        column: [text if good else None for text, good in zip(batch["evolved_instruction"], ok)],
        "elimination_rule": list(batch["elimination_rule"]) if eliminate else [None] * n,
    }
    if "output" in batch and column != "output":
        out["output"] = [None] * n
    return out


def _is_ok(status: list[str]) -> list[bool]:
    return [s == "ok" for s in status]
