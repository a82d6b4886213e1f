"""``dedup``: flag exact, near and semantic duplicates of a dataset's prompts, as clusters.

Every row gets these columns (no row is dropped; ``ds.filter(lambda r: r["dup_keep"])`` keeps
one row per cluster):

- ``dup_cluster`` (int): the row number of the cluster's representative (its own for a unique row);
- ``dup_cluster_size`` (int): rows in the cluster;
- ``dup_keep`` (bool): the row is its cluster's representative;
- ``dup_kind`` (``exact`` | ``near`` | ``semantic`` | None): how a non-representative row matched;
- ``dup_match`` (int | None): the row it matched; ``dup_similarity`` (float | None): 1.0 for an
  exact duplicate, the estimated Jaccard (near) or the cosine (semantic) of that match;
- ``dup_reason`` (str | None): the same in words.

Row numbers count over the whole dataset given (every round of an hfevol output). The
representative is the first row of its cluster by :data:`ORDER`. The prompt is
``instruction``, plus ``input`` on a new line when there is one.

Steps: (1) exact duplicates: equal SHA-1 of the normalised prompt (:mod:`.text`); (2) near
duplicates among the first row of each exact group: MinHash + LSH over word n-grams
(:mod:`.minhash`), estimated Jaccard >= ``threshold``; (3) with an embedder, semantic
duplicates: each first row of an exact group against the rows before it in :data:`ORDER`,
cosine >= ``semantic_threshold`` (:mod:`.neighbours`). All matches are joined into clusters.
Hashes and signatures are computed per row in ``ds.map`` (any ``batch_size``/``num_proc``
gives the same flags); matching is global and never builds a rows × rows matrix.
"""

from __future__ import annotations

import math
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .common import check_fraction, check_int, check_prompt_columns, prompt_batch, prompts, with_columns
from .minhash import DEFAULT_NGRAM, DEFAULT_NUM_PERM, SEED, candidate_edges, lsh_params, signatures
from .neighbours import Embed, best_earlier, embed_all

ORDER = "earliest round, then highest IC-IFD when scored (unscored last), then row order"
DEFAULT_THRESHOLD = 0.8
DEFAULT_SEMANTIC_THRESHOLD = 0.9
COLUMNS = ("dup_cluster", "dup_cluster_size", "dup_keep", "dup_kind", "dup_match", "dup_similarity", "dup_reason")
KINDS = ("exact", "near", "semantic")
_HASH, _SIG, _HAS = "_dup_hash", "_dup_sig", "_dup_has_grams"


def _hash_batch(batch: dict[str, list[Any]], instruction_column: str, input_column: str | None, ngram: int, num_perm: int) -> dict[str, list[Any]]:
    import hashlib

    from .text import ngrams, normalise

    folded = [normalise(t) for t in prompt_batch(batch, instruction_column, input_column)]
    grams = [sorted(set(ngrams(f.split(" "), ngram))) if f else [] for f in folded]
    sigs = signatures(grams, num_perm, SEED)
    hashes = [hashlib.sha1(f.encode("utf-8")).hexdigest() if f else "" for f in folded]  # = text.text_hash
    return {_HASH: hashes, _SIG: sigs.tolist(), _HAS: [bool(g) for g in grams]}


def _column(ds: Any, name: str) -> list[Any]:
    """A column as a Python list (one Arrow conversion, not a lookup per row)."""
    return ds.select_columns([name]).to_dict()[name]


def order_of(ds: Any, score_column: str | None = "ic_ifd") -> Any:
    """Row numbers sorted by :data:`ORDER` (a stable sort: row order breaks ties)."""
    import numpy as np

    n = len(ds)
    keys = [np.arange(n)]
    if score_column and score_column in ds.column_names:
        scores = np.array(
            [s if isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) else np.nan for s in _column(ds, score_column)], dtype=np.float64
        )
        keys.append(np.where(np.isnan(scores), np.inf, -scores))
    if "round" in ds.column_names:
        keys.append(np.array([r if isinstance(r, int) else 0 for r in _column(ds, "round")], dtype=np.int64))
    return np.lexsort(keys)  # the last key is the primary one


class _Clusters:
    """Union-find whose root is always the member earliest in the order (lowest rank)."""

    def __init__(self, rank: Any) -> None:
        self.parent = list(range(len(rank)))
        self.rank = rank

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            first, second = (ra, rb) if self.rank[ra] < self.rank[rb] else (rb, ra)
            self.parent[second] = first


def dedup(
    ds: Any,
    *,
    instruction_column: str = "instruction",
    input_column: str | None = "input",
    threshold: float = DEFAULT_THRESHOLD,
    ngram: int = DEFAULT_NGRAM,
    num_perm: int = DEFAULT_NUM_PERM,
    embed: Embed | None = None,
    embedder: dict[str, Any] | None = None,
    semantic_threshold: float = DEFAULT_SEMANTIC_THRESHOLD,
    score_column: str | None = "ic_ifd",
    batch_size: int = 1000,
    num_proc: int | None = None,
    block: int = 1024,
) -> tuple[Any, dict[str, Any]]:
    """The dataset with the ``dup_*`` columns (module docstring), and the stage's record.

    Args:
        threshold: estimated Jaccard of word n-gram sets, in (0, 1].
        ngram: words per gram (a prompt shorter than that is one gram).
        embed: an embedder (``texts -> vectors``) for the semantic step; ``embedder`` describes it for the record.
        semantic_threshold: cosine, in (0, 1].

    Raises:
        ConfigError: an option outside its range. MissingColumnError, EmptyDatasetError: bad data.
        MissingDependencyError: ``rensa`` is not installed.
    """
    import numpy as np

    threshold = check_fraction(threshold, "--threshold")
    semantic_threshold = check_fraction(semantic_threshold, "--semantic-threshold")
    check_int(ngram, "--ngram", low=1, high=64)
    check_int(num_perm, "--num-perm", low=16, high=1024)
    check_int(batch_size, "--map-batch-size", low=1)
    input_column = check_prompt_columns(ds, instruction_column, input_column)
    signatures([["probe"]], 16)  # rensa is installed: checked before any work
    bands, rows_per_band = lsh_params(threshold, num_perm)

    from datasets import Features, List, Value

    features = Features({_HASH: Value("string"), _SIG: List(Value("uint32"), length=num_perm), _HAS: Value("bool")})
    hashed = ds.map(
        _hash_batch, batched=True, batch_size=batch_size, num_proc=num_proc, remove_columns=ds.column_names, features=features,
        fn_kwargs={"instruction_column": instruction_column, "input_column": input_column, "ngram": ngram, "num_perm": num_perm},
        desc="MinHash signatures",
    )  # fmt: skip
    hashes = hashed.data.column(_HASH).to_pylist()
    n = len(ds)
    order = order_of(ds, score_column)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    clusters = _Clusters(rank.tolist())
    best: dict[int, tuple[int, float, int]] = {}  # row -> (kind index, similarity, matched earlier row)
    later: dict[int, tuple[int, float, int]] = {}  # row -> its first match with a later row (a row with no earlier match)

    def link(a: int, b: int, kind: int, similarity: float) -> None:
        """``a`` comes before ``b`` in the order; ``b`` matched ``a``."""
        clusters.union(a, b)
        old = best.get(b)
        if old is None or (kind, -similarity) < (old[0], -old[1]):
            best[b] = (kind, similarity, a)
        later.setdefault(a, (kind, similarity, b))

    heads: list[int] = []
    seen: dict[str, int] = {}
    for i in order.tolist():
        h = hashes[i]
        if not h:  # no text (an instruction that is None or empty): nothing to compare, so no one's duplicate
            heads.append(i)
            continue
        if h in seen:
            link(seen[h], i, 0, 1.0)
        else:
            seen[h] = i
            heads.append(i)
    has = hashed.data.column(_HAS).to_numpy(zero_copy_only=False)
    with_grams = [i for i in heads if has[i]]
    near = 0
    if len(with_grams) > 1:
        sigs = _signature_rows(hashed, with_grams, num_perm)
        a, b, est = candidate_edges(sigs, threshold, bands, rows_per_band)
        for x, y, s in zip(a.tolist(), b.tolist(), est.tolist(), strict=True):
            link(with_grams[x], with_grams[y], 1, float(s))
        near = len(a)
    semantic: dict[str, Any] | None = None
    if embed is not None:
        heads = [i for i in heads if hashes[i]]
        texts = prompts(ds.select(heads), instruction_column, input_column)
        vectors = embed_all(embed, texts)
        match, cosine = best_earlier(vectors, semantic_threshold, block=block)
        found = np.nonzero(match >= 0)[0]
        for y in found.tolist():
            link(heads[int(match[y])], heads[y], 2, float(cosine[y]))
        semantic = {
            "embedder": embedder or {"model": "(given in Python)"},
            "threshold": semantic_threshold,
            "measure": "cosine of unit embeddings",
            "search": "exact, block-wise, each row against the rows before it in the order",
            "matches": int(len(found)),
        }

    columns, counts = _columns(ds, n, clusters, {**later, **best})
    out = with_columns(ds, columns)
    record = {
        "stage": "dedup",
        "text": f'{instruction_column} + "\\n" + {input_column}' if input_column else instruction_column,
        "normalisation": "NFKC, case folded, punctuation and symbols as spaces, whitespace collapsed",
        "order": ORDER + (f" (score column {score_column})" if score_column and score_column in ds.column_names else ""),
        "exact": {"method": "SHA-1 of the normalised prompt"},
        "near": {
            "method": "MinHash + LSH over word n-grams",
            "library": _library(),
            "ngram": ngram,
            "num_perm": num_perm,
            "seed": SEED,
            "threshold": threshold,
            "bands": bands,
            "rows_per_band": rows_per_band,
            "measure": "estimated Jaccard",
            "matches": near,
        },  # fmt: skip
        "semantic": semantic,
        "rows": n,
        "clusters": counts["clusters"],
        "kept": counts["kept"],
        "flagged": {k: counts[k] for k in KINDS},
        "columns": list(COLUMNS),
    }
    return out, record


def _signature_rows(hashed: Any, rows: list[int], num_perm: int) -> Any:
    """The signatures of ``rows`` as a uint32 array (len(rows) × num_perm), read from Arrow without Python lists."""
    import numpy as np
    import pyarrow as pa

    column = hashed.data.column(_SIG).take(pa.array(rows, type=pa.int64())).combine_chunks()
    return np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.uint32).reshape(len(rows), num_perm)


def _library() -> str:
    try:
        return f"rensa {version('rensa')} (R-MinHash)"
    except PackageNotFoundError:
        return "rensa (R-MinHash)"


def _columns(ds: Any, n: int, clusters: _Clusters, best: dict[int, tuple[int, float, int]]) -> tuple[list[tuple[str, list[Any], Any]], dict[str, int]]:
    from collections import Counter

    from datasets import Value

    roots = [clusters.find(i) for i in range(n)]
    sizes = Counter(roots)
    rounds = _column(ds, "round") if "round" in ds.column_names else None
    kind_col: list[str | None] = [None] * n
    match_col: list[int | None] = [None] * n
    sim_col: list[float | None] = [None] * n
    reason_col: list[str | None] = [None] * n
    counts: Counter[str] = Counter()
    for i in range(n):
        if roots[i] == i:
            continue
        kind, similarity, other = best[i]
        name = KINDS[kind]
        counts[name] += 1
        kind_col[i], match_col[i], sim_col[i] = name, other, round(similarity, 6)
        where = f"row {other}" + (f" (round {rounds[other]})" if rounds is not None else "")
        if name == "exact":
            reason_col[i] = f"exact duplicate of {where} after normalisation"
        elif name == "near":
            reason_col[i] = f"near-duplicate of {where}: estimated Jaccard {similarity:.3f}"
        else:
            reason_col[i] = f"semantic duplicate of {where}: cosine {similarity:.3f}"
        if roots[i] != other:
            reason_col[i] = f"{reason_col[i]}; cluster of row {roots[i]}"
    counts["clusters"] = len(sizes)
    counts["kept"] = len(sizes)
    columns: list[tuple[str, list[Any], Any]] = [
        ("dup_cluster", roots, Value("int64")),
        ("dup_cluster_size", [sizes[r] for r in roots], Value("int64")),
        ("dup_keep", [roots[i] == i for i in range(n)], Value("bool")),
        ("dup_kind", kind_col, Value("string")),
        ("dup_match", match_col, Value("int64")),
        ("dup_similarity", sim_col, Value("float64")),
        ("dup_reason", reason_col, Value("string")),
    ]
    return columns, {**{k: 0 for k in KINDS}, **counts}
