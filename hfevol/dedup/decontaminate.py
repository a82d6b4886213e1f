"""``decontaminate``: flag prompts that overlap benchmark prompts (word n-grams) or, with an embedder, lie close in meaning.

Every row gets (no row is dropped; ``ds.filter(lambda r: not r["contam_flag"])`` drops the flagged):

- ``contam_flag`` (bool); ``contam_method`` (``ngram`` | ``semantic`` | None);
- ``contam_benchmark`` (str | None): the benchmark's name; ``contam_benchmark_row`` (int | None):
  the row of the benchmark that matched; ``contam_benchmark_prompt`` (str | None): its prompt
  (up to :data:`PROMPT_CHARS` characters);
- ``contam_score`` (float | None): for ``ngram``, the share of the benchmark prompt's n-grams
  found in the row's prompt; for ``semantic``, the cosine;
- ``contam_reason`` (str | None).

N-grams: the row's prompt (instruction + input) and each benchmark prompt are normalised
(:mod:`.text`) and cut into word ``ngram``-grams (default :data:`DEFAULT_NGRAM`, 8: the
open-r1 and s1 decontamination scripts use 8, lm-eval's and GPT-3's 13; a benchmark prompt
shorter than that counts as one gram, which must appear whole). A row is flagged when it
shares at least one gram with a benchmark prompt and the shared share is at least
``min_overlap`` (default 0: any shared gram, as those scripts do); the benchmark prompt with
the largest share is named. Semantic: with an embedder, each row's prompt against every
benchmark prompt (exact block-wise search); cosine >= ``semantic_threshold`` flags a row that
the n-grams did not. The n-gram matching runs in ``ds.map`` (flags do not depend on
``batch_size`` or ``num_proc``); the benchmark index holds only the benchmarks' grams.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from .benchmarks import Benchmark, load_prompts, resolve
from .common import check_fraction, check_int, check_prompt_columns, prompt_batch, prompts, with_columns
from .neighbours import Embed, best_match, embed_all

DEFAULT_NGRAM = 8
DEFAULT_SEMANTIC_THRESHOLD = 0.85
PROMPT_CHARS = 300
COLUMNS = ("contam_flag", "contam_method", "contam_benchmark", "contam_benchmark_row", "contam_benchmark_prompt", "contam_score", "contam_reason")


class Index:
    """Every benchmark prompt's n-grams, gram -> prompts holding it."""

    def __init__(self, names: list[str], texts: list[list[str]], rows: list[list[int]], ngram: int) -> None:
        from .text import ngrams, words

        self.ngram = ngram
        self.names = names
        self.prompts: list[tuple[int, int, str, int]] = []  # (benchmark, row, text, number of grams)
        self.grams: dict[str, list[int]] = {}
        self.short: set[int] = set()  # word counts of prompts shorter than ngram
        for b, (bench_texts, bench_rows) in enumerate(zip(texts, rows, strict=True)):
            for text, row in zip(bench_texts, bench_rows, strict=True):
                tokens = words(text)
                grams = set(ngrams(tokens, ngram))
                if not grams:
                    continue
                if len(tokens) < ngram:
                    self.short.add(len(tokens))
                p = len(self.prompts)
                self.prompts.append((b, row, text, len(grams)))
                for g in grams:
                    self.grams.setdefault(g, []).append(p)

    def best(self, text: str) -> tuple[int, float] | None:
        """The prompt sharing the largest share of its grams with ``text``: (prompt, share); None if none is shared."""
        from .text import ngrams, words

        tokens = words(text)
        grams = set(ngrams(tokens, self.ngram)) if len(tokens) >= self.ngram else set()
        for length in self.short:
            if len(tokens) >= length:
                grams.update(ngrams(tokens, length))
        shared: Counter[int] = Counter()
        for g in grams:
            for p in self.grams.get(g, ()):
                shared[p] += 1
        if not shared:
            return None
        p = min(shared, key=lambda q: (-shared[q] / self.prompts[q][3], q))
        return p, shared[p] / self.prompts[p][3]


def _match_batch(batch: dict[str, list[Any]], index: Index, instruction_column: str, input_column: str | None, min_overlap: float) -> dict[str, list[Any]]:
    found = [index.best(t) for t in prompt_batch(batch, instruction_column, input_column)]
    keep = [f if f is not None and f[1] >= min_overlap else None for f in found]
    return {"_contam_prompt": [f[0] if f else -1 for f in keep], "_contam_share": [f[1] if f else None for f in keep]}


def decontaminate(
    ds: Any,
    against: Sequence[str | Benchmark],
    *,
    instruction_column: str = "instruction",
    input_column: str | None = "input",
    ngram: int = DEFAULT_NGRAM,
    min_overlap: float = 0.0,
    embed: Embed | None = None,
    embedder: dict[str, Any] | None = None,
    semantic_threshold: float = DEFAULT_SEMANTIC_THRESHOLD,
    batch_size: int = 1000,
    num_proc: int | None = None,
    block: int = 1024,
) -> tuple[Any, dict[str, Any]]:
    """The dataset with the ``contam_*`` columns (module docstring), and the stage's record (a summary per benchmark).

    ``against``: recipe names (:data:`~hfevol.dedup.benchmarks.RECIPES`), sources (column ``prompt``) or :class:`Benchmark` objects.

    Raises:
        ConfigError: an option out of range, or no benchmark. MissingColumnError, EmptyDatasetError: a
        benchmark or the dataset lacks the column or rows (checked before any matching).
    """
    import numpy as np

    from ..errors import ConfigError

    check_int(ngram, "--ngram", low=1, high=64)
    min_overlap = check_fraction(min_overlap, "--min-overlap", open_low=False)
    semantic_threshold = check_fraction(semantic_threshold, "--semantic-threshold")
    check_int(batch_size, "--map-batch-size", low=1)
    if not against:
        raise ConfigError(
            "no benchmark to check against", hint="give --against DATASET (a file, a folder, a Hub id or a recipe: ifeval, alpacaeval, mt-bench, arena-hard)."
        )
    input_column = check_prompt_columns(ds, instruction_column, input_column)
    benchmarks = [resolve(b) for b in against]
    loaded = [load_prompts(b) for b in benchmarks]
    names = [b.label for b in benchmarks]
    index = Index(names, [t for t, _ in loaded], [r for _, r in loaded], ngram)

    matched = ds.map(
        _match_batch, batched=True, batch_size=batch_size, num_proc=num_proc, remove_columns=ds.column_names,
        fn_kwargs={"index": index, "instruction_column": instruction_column, "input_column": input_column, "min_overlap": min_overlap},
        desc="Benchmark n-grams",
    )  # fmt: skip
    prompt_of = np.array(matched.data.column("_contam_prompt").to_numpy(), dtype=np.int64)  # a writable copy
    score = matched.data.column("_contam_share").to_pylist()
    method: list[str | None] = ["ngram" if p >= 0 else None for p in prompt_of.tolist()]
    semantic: dict[str, Any] | None = None
    if embed is not None:
        keys = embed_all(embed, [p[2] for p in index.prompts])
        queries = embed_all(embed, prompts(ds, instruction_column, input_column))
        nearest, cosine = best_match(queries, keys, block=block)
        added = 0
        for i in np.nonzero(cosine >= semantic_threshold)[0].tolist():
            if method[i] is None:
                method[i], prompt_of[i], score[i] = "semantic", nearest[i], float(cosine[i])
                added += 1
        semantic = {
            "embedder": embedder or {"model": "(given in Python)"},
            "threshold": semantic_threshold,
            "measure": "cosine of unit embeddings",
            "search": "exact, block-wise",
            "matches": added,
        }
    columns, summary = _columns(index, benchmarks, prompt_of.tolist(), method, score, ngram)
    out = with_columns(ds, columns)
    record = {
        "stage": "decontaminate",
        "text": f'{instruction_column} + "\\n" + {input_column}' if input_column else instruction_column,
        "normalisation": "NFKC, case folded, punctuation and symbols as spaces, whitespace collapsed",
        "ngram": {
            "n": ngram,
            "min_overlap": min_overlap,
            "rule": "at least one shared word n-gram, and a shared share of the benchmark prompt's n-grams >= min_overlap",
        },
        "semantic": semantic,
        "rows": len(ds),
        "flagged": sum(m is not None for m in method),
        "benchmarks": summary,
        "columns": list(COLUMNS),
    }
    return out, record


def _columns(
    index: Index, benchmarks: list[Benchmark], prompt_of: list[int], method: list[str | None], score: list[Any], ngram: int
) -> tuple[list[tuple[str, list[Any], Any]], list[dict[str, Any]]]:
    from datasets import Value

    n = len(prompt_of)
    bench: list[str | None] = [None] * n
    row: list[int | None] = [None] * n
    text: list[str | None] = [None] * n
    reason: list[str | None] = [None] * n
    values: list[float | None] = [None] * n
    counts: Counter[tuple[int, str]] = Counter()
    for i, (p, m) in enumerate(zip(prompt_of, method, strict=True)):
        if m is None:
            continue
        b, r, t, _ = index.prompts[p]
        bench[i], row[i], text[i], values[i] = index.names[b], r, t[:PROMPT_CHARS], round(float(score[i]), 6)
        counts[(b, m)] += 1
        how = f"shares {values[i]:.0%} of the word {ngram}-grams of" if m == "ngram" else f"cosine {values[i]:.3f} to"
        reason[i] = f"{how} {index.names[b]} row {r}"
    prompts_per = Counter(b for b, *_ in index.prompts)
    summary = [
        {"name": index.names[b], "source": bench_.source, "column": bench_.column, "split": bench_.split, "prompts": prompts_per[b],
         "flagged_ngram": counts[(b, "ngram")], "flagged_semantic": counts[(b, "semantic")], "flagged": counts[(b, "ngram")] + counts[(b, "semantic")]}
        for b, bench_ in enumerate(benchmarks)
    ]  # fmt: skip
    columns: list[tuple[str, list[Any], Any]] = [
        ("contam_flag", [m is not None for m in method], Value("bool")),
        ("contam_method", method, Value("string")),
        ("contam_benchmark", bench, Value("string")),
        ("contam_benchmark_row", row, Value("int64")),
        ("contam_benchmark_prompt", text, Value("string")),
        ("contam_score", values, Value("float64")),
        ("contam_reason", reason, Value("string")),
    ]
    return columns, summary
