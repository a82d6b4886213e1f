"""Benchmark prompts to check against: any dataset :func:`hfevol.io.load_rows` reads, with its prompt column.

Recipes name the usual instruction benchmarks by Hub id (loaded when online, or from the
local Hub cache): ``ifeval``, ``alpacaeval``, ``mt-bench``, ``arena-hard``. A prompt cell may be
a string, a list of strings (each turn is one prompt: MT-Bench) or a list of chat messages
(their ``content``); every prompt keeps the row number it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError, EmptyDatasetError, MissingColumnError


@dataclass(frozen=True)
class Benchmark:
    """Where a benchmark's prompts are: ``source`` (file, folder, Hub id), ``column``, ``split``; ``name`` for reports."""

    source: str
    column: str = "prompt"
    split: str = "train"
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or Path(self.source).stem or self.source


RECIPES: dict[str, Benchmark] = {
    "ifeval": Benchmark("google/IFEval", column="prompt", split="train", name="IFEval"),
    "alpacaeval": Benchmark("tatsu-lab/alpaca_eval", column="instruction", split="eval", name="AlpacaEval"),
    "mt-bench": Benchmark("HuggingFaceH4/mt_bench_prompts", column="prompt", split="train", name="MT-Bench"),
    "arena-hard": Benchmark("lmarena-ai/arena-hard-auto-v0.1", column="turns", split="train", name="Arena-Hard"),
}
"""The documented recipes (README, "Benchmark contamination"); a name here in ``--against`` uses them."""


def resolve(spec: str | Benchmark, column: str = "prompt", split: str = "train") -> Benchmark:
    """A :class:`Benchmark` from a recipe name or a source (with ``column`` and ``split``)."""
    if isinstance(spec, Benchmark):
        return spec
    return RECIPES.get(spec.lower(), Benchmark(spec, column=column, split=split))


def _texts(cell: Any) -> list[str]:
    if isinstance(cell, str):
        return [cell]
    if isinstance(cell, dict):
        content = cell.get("content")
        return [content] if isinstance(content, str) else []
    if isinstance(cell, (list, tuple)):
        return [t for item in cell for t in _texts(item)]
    return []


def load_prompts(benchmark: Benchmark) -> tuple[list[str], list[int]]:
    """The benchmark's prompts and, for each, its row number in the benchmark.

    Raises:
        DatasetNotFoundError, DataError: the source does not load (:func:`hfevol.io.load_rows`).
        MissingColumnError: no such column.
        EmptyDatasetError: no rows, or no non-empty prompt.
    """
    from ..io import load_rows

    ds = load_rows(benchmark.source, split=benchmark.split)
    if benchmark.column not in ds.column_names:
        raise MissingColumnError(benchmark.column, ds.column_names, hint=f"name the prompt column of benchmark {benchmark.source!r} with --against-column.")
    texts, rows = [], []
    for i, cell in enumerate(ds[benchmark.column]):
        for text in _texts(cell):
            if text.strip():
                texts.append(text)
                rows.append(i)
    if not texts:
        what = "has no rows" if len(ds) == 0 else f"has no non-empty prompt in column {benchmark.column!r}"
        raise EmptyDatasetError(f"benchmark {benchmark.source!r} {what}", hint="check the benchmark file, its --against-column and split.")
    if len(set(rows)) < len(ds) // 2:
        raise DataError(
            f"benchmark {benchmark.source!r}: most cells of column {benchmark.column!r} hold no text",
            hint="name the column that holds the prompts with --against-column.",
        )
    return texts, rows
