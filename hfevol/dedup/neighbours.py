"""The embedder interface, and block-wise nearest-neighbour search over unit vectors.

An *embedder* here is any callable ``embed(texts) -> array`` returning one row per text;
rows are normalised to unit length (:func:`unit_rows`), so the dot product is the cosine.
:func:`load_embedder` builds one from a name with the sentence-transformers embedder of
:mod:`hfevol.analysis.embed` (``minilm``, ``mpnet``, a folder or a Hub id).

Both searches are exact and block-wise: ``block`` query rows at a time against the keys,
so memory is O(block × keys), never rows × rows. Ties go to the lowest key index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigError, HfevolError, MissingDependencyError

Embed = Callable[[Sequence[str]], Any]
"""``embed(texts)``: a float array (len(texts) × dimensions)."""
DEFAULT_BLOCK = 1024


def unit_rows(vectors: Any) -> Any:
    """``vectors`` as a float32 2-D array of unit rows (:func:`hfevol.analysis.mnd.unit_rows`: a zero,
    NaN or non-2-D input is a DataError)."""
    from ..analysis.mnd import unit_rows as analysis_unit_rows

    return analysis_unit_rows(vectors)


def load_embedder(name: str, *, batch_size: int = 64, device: str = "auto") -> tuple[Embed, dict[str, Any]]:
    """An embedder by name (see :class:`hfevol.analysis.embed.Embedder`), loaded now, and its description.

    Raises:
        MissingDependencyError: sentence-transformers (or hfevol's analysis package) is missing.
        ModelNotFoundError, ModelLoadError: the model does not load.
    """
    try:
        from ..analysis.embed import Embedder
    except ImportError:
        raise MissingDependencyError(
            "hfevol.analysis", "semantic matching (--embedder)", "an hfevol with the analysis package, and pip install 'hfevol[analysis]'"
        ) from None
    embedder = Embedder(model=name, batch_size=batch_size, device=device)
    try:
        described = embedder.describe()  # loads the model: a bad name fails before any row is read
    except HfevolError:
        raise
    except Exception as exc:  # noqa: BLE001 - any loading failure is one line
        raise ConfigError(f"embedder {name!r} does not load: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    return embedder.encode, described


def embed_all(embed: Embed, texts: Sequence[str], *, batch: int = 1024) -> Any:
    """Unit embeddings of ``texts``, ``batch`` texts per call of ``embed``."""
    import numpy as np

    parts = [unit_rows(embed(list(texts[lo : lo + batch]))) for lo in range(0, len(texts), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)


def check_block(block: int) -> None:
    if not isinstance(block, int) or isinstance(block, bool) or block < 1:
        raise ConfigError(f"block={block!r} must be an integer >= 1")


def best_earlier(vectors: Any, threshold: float, *, block: int = DEFAULT_BLOCK) -> tuple[Any, Any]:
    """For each row ``i``, the most similar row ``j < i`` with cosine >= ``threshold``.

    Returns ``(match, cosine)``: int64 array (-1 where none) and float64 array (NaN where none).
    """
    import numpy as np

    check_block(block)
    e = unit_rows(vectors)
    n = e.shape[0]
    match = np.full(n, -1, dtype=np.int64)
    cosine = np.full(n, np.nan, dtype=np.float64)
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        if hi <= 1:
            continue
        sims = e[lo:hi] @ e[:hi].T  # (hi - lo) × hi: only earlier rows can be matched
        rows = np.arange(hi - lo)
        sims[np.arange(hi)[None, :] >= (rows + lo)[:, None]] = -np.inf  # j >= i: not earlier
        j = np.argmax(sims, axis=1)
        top = sims[rows, j].astype(np.float64)
        hit = top >= threshold
        match[lo:hi][hit] = j[hit]
        cosine[lo:hi][hit] = np.minimum(top[hit], 1.0)
    return match, cosine


def best_match(queries: Any, keys: Any, *, block: int = DEFAULT_BLOCK) -> tuple[Any, Any]:
    """For each query row, the most similar key row: ``(index, cosine)`` arrays (int64, float64)."""
    import numpy as np

    check_block(block)
    q, k = unit_rows(queries), unit_rows(keys)
    index = np.empty(q.shape[0], dtype=np.int64)
    cosine = np.empty(q.shape[0], dtype=np.float64)
    for lo in range(0, q.shape[0], block):
        sims = q[lo : lo + block] @ k.T
        j = np.argmax(sims, axis=1)
        index[lo : lo + block] = j
        cosine[lo : lo + block] = np.minimum(sims[np.arange(len(j)), j], 1.0)
    return index, cosine
