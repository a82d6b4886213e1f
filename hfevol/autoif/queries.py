"""AutoIF step 4: user queries, sampled per constraint with a seeded, recorded choice, and placed beside the constraint.

The default queries are the project's own file (``hfevol/data/autoif_queries.jsonl``: 120
everyday open requests that suit format constraints). Any dataset that
:func:`~hfevol.formats.to_alpaca` reads works too (a ShareGPT dump, an Alpaca file); its
instruction, with the input appended when there is one, is the query. As in both
references, only queries of ``min_chars`` to ``max_chars`` characters are used.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ..errors import ConfigError, EmptyDatasetError
from ..paths import package_file
from ..seeding import row_seed

QUERY_FILE = ("data", "autoif_queries.jsonl")
DEFAULT_QUERIES = "autoif"
"""The name that stands for the project's query file (``--queries autoif``, the default)."""
Placement = Literal["split", "joined"]
PLACEMENTS: tuple[str, ...] = ("split", "joined")
"""``split`` (the paper's code): the constraint is the ``instruction`` and the query the ``input``.
``joined`` (QwenLM/AutoIF): the query, then the constraint, both in ``instruction``."""


def load_queries(
    source: str | None = None,
    *,
    split: str = "train",
    mapping: Mapping[str, str] | None = None,
    format: str = "auto",
    min_chars: int = 20,
    max_chars: int = 300,
) -> tuple[list[str], dict[str, int]]:
    """The usable queries of ``source`` in order, deduplicated, and counts (read, too short or long, duplicate).

    Raises:
        MissingColumnError: the dataset has no instruction column (nor a conversation one).
        EmptyDatasetError: no query of the allowed length is left.
        DatasetNotFoundError, DataError: the dataset cannot be read.
    """
    from ..formats import to_alpaca
    from ..io import load_rows

    name = source or DEFAULT_QUERIES
    path = str(package_file(*QUERY_FILE)) if name == DEFAULT_QUERIES else name
    ds = to_alpaca(load_rows(path, split=split), mapping, format=format)
    inputs = ds["input"] if "input" in ds.column_names else [None] * len(ds)
    seen: set[str] = set()
    queries: list[str] = []
    counts = {"read": len(ds), "length": 0, "duplicate": 0, "empty": 0}
    for instruction, extra in zip(ds["instruction"], inputs):
        if not isinstance(instruction, str) or not instruction.strip():
            counts["empty"] += 1
            continue
        query = instruction.strip() + (f"\n\n{extra.strip()}" if isinstance(extra, str) and extra.strip() else "")
        if not min_chars <= len(query) <= max_chars:
            counts["length"] += 1
            continue
        if query in seen:
            counts["duplicate"] += 1
            continue
        seen.add(query)
        queries.append(query)
    if not queries:
        raise EmptyDatasetError(
            f"query dataset {name!r} has no query of {min_chars} to {max_chars} characters ({counts['read']} row(s) read)",
            hint="give queries of that length, or another --queries dataset.",
        )
    return queries, counts


def sample_queries(n_queries: int, k: int, seed: int, constraint_id: str) -> list[int]:
    """``k`` distinct query indices for one constraint (all of them, shuffled, when there are fewer).

    The choice depends only on (``seed``, ``constraint_id``, ``n_queries``, ``k``), through
    :func:`~hfevol.seeding.row_seed`, never on global random state.
    """
    if k < 1:
        raise ConfigError(f"queries per constraint={k!r} must be at least 1")
    rng = random.Random(row_seed(seed, "autoif_queries", constraint_id))
    return rng.sample(range(n_queries), min(k, n_queries))


def place(constraint: str, query: str, placement: Placement) -> tuple[str, str]:
    """The (instruction, input) of one pair under ``placement`` (see :data:`PLACEMENTS`)."""
    if placement == "split":
        return constraint, query
    if placement == "joined":
        query = query.strip()
        joiner = " " if query[-1:] in ".?!" else ". "
        return f"{query}{joiner}{constraint.strip()}", ""
    raise ConfigError(f"unknown placement {placement!r}", hint=f"choose one of: {', '.join(PLACEMENTS)}.")


def pair_rows(
    constraints: Sequence[Mapping[str, Any]],
    queries: Sequence[str],
    *,
    per_constraint: int,
    responses_per_query: int,
    seed: int,
    placement: Placement = "split",
) -> list[dict[str, Any]]:
    """One row per (constraint, sampled query, response number), ready for :class:`~hfevol.respond.Respond`.

    Each row has ``id`` (``<constraint_id>-q<query_index>-r<k>``, the responder's seed key),
    ``pair_id``, ``constraint_id``, ``constraint``, ``query``, ``query_index``,
    ``response_index``, ``instruction`` and ``input``.
    """
    if responses_per_query < 1:
        raise ConfigError(f"responses per query={responses_per_query!r} must be at least 1")
    rows = []
    for c in constraints:
        cid = c["constraint_id"]
        for q in sample_queries(len(queries), per_constraint, seed, cid):
            instruction, extra = place(c["constraint"], queries[q], placement)
            for r in range(responses_per_query):
                rows.append(
                    {
                        "id": f"{cid}-q{q}-r{r}",
                        "pair_id": f"{cid}-q{q}",
                        "constraint_id": cid,
                        "constraint": c["constraint"],
                        "query": queries[q],
                        "query_index": q,
                        "response_index": r,
                        "instruction": instruction,
                        "input": extra,
                    }
                )
    return rows
