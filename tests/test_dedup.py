"""hfevol.dedup: exact, near (MinHash) and semantic duplicates flagged as clusters; bad options refused."""

from __future__ import annotations

import random

import datasets
import pytest

from hfevol.dedup.dedup import dedup
from hfevol.errors import ConfigError, MissingColumnError

WORDS = [f"word{i}" for i in range(400)]


def trigrams(text: str) -> set[tuple[str, ...]]:
    """The oracle: word 3-gram sets of lower-cased, punctuation-free text, written without hfevol's helpers."""
    clean = "".join(ch if ch.isalnum() or ch.isspace() else " " for ch in text.lower()).split()
    return {tuple(clean[i : i + 3]) for i in range(len(clean) - 2)}


def jaccard(a: str, b: str) -> float:
    x, y = trigrams(a), trigrams(b)
    return len(x & y) / len(x | y)


def table(rows: list[str], **extra: list) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"instruction": rows, "input": [""] * len(rows), **extra})


def test_exact_copies_differing_in_case_spacing_and_punctuation_form_one_cluster() -> None:
    rows = ["Write a poem about the sea.", "  WRITE a poem   about the SEA!", "write a poem about the sea", "Write a poem about the mountains."]
    out, record = dedup(table(rows))
    assert out["dup_cluster"] == [0, 0, 0, 3]
    assert out["dup_keep"] == [True, False, False, True]
    assert out["dup_kind"] == [None, "exact", "exact", None]
    assert out["dup_similarity"][1:3] == [1.0, 1.0]
    assert out["dup_cluster_size"] == [3, 3, 3, 1]
    assert record["flagged"] == {"exact": 2, "near": 0, "semantic": 0} and record["kept"] == 2
    assert "row 0" in out["dup_reason"][1]


def test_near_copies_on_both_sides_of_the_threshold() -> None:
    rng = random.Random(3)
    base = rng.sample(WORDS, 60)
    far_base = rng.sample(WORDS, 60)
    close = base[:58] + ["alpha", "beta"]  # changes the last two words
    halfway = base[:30] + rng.sample(WORDS, 30)
    texts = [" ".join(base), " ".join(close), " ".join(far_base), " ".join(halfway)]
    j_close, j_half = jaccard(texts[0], texts[1]), jaccard(texts[0], texts[3])
    assert j_close > 0.9 and j_half < 0.4  # the true similarities, from the oracle
    out, record = dedup(table(texts), threshold=0.8)
    assert out["dup_kind"] == [None, "near", None, None]
    assert out["dup_match"][1] == 0
    assert abs(out["dup_similarity"][1] - j_close) < 0.1  # the estimate is recorded, close to the truth
    assert record["near"]["threshold"] == 0.8 and record["near"]["bands"] * record["near"]["rows_per_band"] <= 128


def test_a_pair_just_below_and_just_above_a_threshold() -> None:
    rng = random.Random(5)
    base = rng.sample(WORDS, 100)
    # replacing k words at the end leaves 98 - k of the base's 98 trigrams: J = (98 - k) / (98 + k)
    variant = lambda k: " ".join(base[: 100 - k] + [f"new{i}" for i in range(k)])  # noqa: E731
    seventy = variant(17)  # J = 81 / 115 = 0.704
    ninety = variant(5)  # J = 93 / 103 = 0.903
    assert abs(jaccard(" ".join(base), seventy) - 81 / 115) < 1e-9 and abs(jaccard(" ".join(base), ninety) - 93 / 103) < 1e-9
    for other, flagged in ((seventy, False), (ninety, True)):
        out, _ = dedup(table([" ".join(base), other]), threshold=0.8, num_perm=256)
        assert out["dup_keep"][1] is (not flagged)


def test_rows_that_must_not_match_stay_alone() -> None:
    rows = ["Explain photosynthesis to a child.", "Write a Python function that reverses a list.", "What is the capital of France?",
            "Summarise the plot of Hamlet in three sentences.", "Give three tips for a job interview.", ""]  # fmt: skip
    out, record = dedup(table(rows))
    assert all(out["dup_keep"]) and out["dup_cluster"] == list(range(len(rows)))
    assert record["clusters"] == len(rows)


def test_representative_is_earliest_round_then_highest_score_then_row_order() -> None:
    rows = ["Sort a list in Python."] * 4
    out, record = dedup(table(rows, round=[2, 1, 1, 1], ic_ifd=[0.99, 0.2, 0.7, 0.7]))
    assert out["dup_keep"] == [False, False, True, False]
    assert set(out["dup_cluster"]) == {2}
    assert "IC-IFD" in record["order"]


def test_flags_are_stable_across_batch_sizes_and_num_proc() -> None:
    rng = random.Random(11)
    bases = [rng.sample(WORDS, 30) for _ in range(40)]
    rows, rounds = [], []
    for i in range(240):
        words = list(bases[i % 40])
        for _ in range(rng.randint(0, 1)):
            words[rng.randrange(30)] = rng.choice(WORDS)
        rows.append(" ".join(words) if i % 7 else " ".join(words).upper())
        rounds.append(1 + i % 3)
    ds = table(rows, round=rounds)
    columns = ["dup_cluster", "dup_keep", "dup_kind", "dup_match", "dup_similarity"]
    reference = dedup(ds, batch_size=1000)[0].select_columns(columns).to_dict()
    assert sum(not k for k in reference["dup_keep"]) > 100  # the set does have duplicates
    for kwargs in ({"batch_size": 7}, {"batch_size": 50, "num_proc": 2}):
        assert dedup(ds, **kwargs)[0].select_columns(columns).to_dict() == reference


def test_several_clusters_chain_through_transitive_matches() -> None:
    rng = random.Random(2)
    base = rng.sample(WORDS, 80)
    step1 = base[:76] + ["x1", "x2", "x3", "x4"]
    step2 = step1[:4] + ["y1", "y2"] + step1[6:]
    assert jaccard(" ".join(step1), " ".join(step2)) > 0.85 and jaccard(" ".join(base), " ".join(step1)) > 0.85
    out, _ = dedup(table([" ".join(step2), " ".join(base), " ".join(step1)], round=[2, 1, 1]), num_perm=256)
    assert out["dup_cluster"] == [1, 1, 1] and out["dup_keep"] == [False, True, False]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"threshold": 1.5}, "--threshold 1.5 is outside (0, 1]"), ({"threshold": 0}, "--threshold 0"),
     ({"semantic_threshold": -0.2}, "--semantic-threshold"), ({"ngram": 0}, "--ngram 0"), ({"num_perm": 4}, "--num-perm 4")],
)  # fmt: skip
def test_options_outside_their_range_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("]", r"\]")):
        dedup(table(["a b c"]), **kwargs)


def test_a_missing_prompt_column_is_named() -> None:
    with pytest.raises(MissingColumnError, match="'prompt'"):
        dedup(datasets.Dataset.from_dict({"text": ["x"]}), instruction_column="prompt")


def test_rows_without_text_are_nobodys_duplicates():
    """An instruction that is None or empty (an eliminated evolution) has nothing to compare: no cluster with other such rows."""
    ds = datasets.Dataset.from_dict({"instruction": [None, "", "Sort a list.", None, "sort a LIST!"], "input": [""] * 5})
    flagged, stage = dedup(ds)
    assert flagged["dup_keep"] == [True, True, True, True, False]
    assert flagged["dup_kind"] == [None, None, None, None, "exact"]
    assert len(set(flagged["dup_cluster"])) == 4 and stage["flagged"]["exact"] == 1
