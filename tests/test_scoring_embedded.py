"""Scoring with the real embedded model (SmolLM2-135M-Instruct) against the reference procedure."""

from __future__ import annotations

import pytest
from reference_eval_loss import reference_scores

from hfevol.io import builtin_sample
from hfevol.scoring import ANSWER_GIVEN_QUESTION, QUESTION, Score, TokenizerEncoder, chat_sequences

pytestmark = pytest.mark.slow

KEYS = ("loss_q", "loss_a_given_q", "loss_a", "ifd", "ic_ifd")
EDGE_ROWS = [
    {"instruction": "Translate to French:\n", "input": "", "output": "Bonjour à tous !"},  # trailing newline meets the separator
    {"instruction": "Fix the bug.", "input": "def f(x):\n    return x +", "output": "def f(x):\n    return x + 1\n"},
    {"instruction": "Réponds en une phrase : pourquoi ?", "input": " ", "output": "Parce que 😀."},
]


@pytest.fixture(scope="module")
def rows():
    sample = builtin_sample().to_list()
    picked = sample[:4] + [r for r in sample if r["input"]][:4] + sample[40:42]
    return [{k: r[k] for k in ("instruction", "input", "output")} for r in picked] + EDGE_ROWS


def score(rows, **options):
    s = Score(model="embedded", device="cpu", **options)
    return s.score_texts([r["instruction"] for r in rows], [r["output"] for r in rows], [r["input"] for r in rows])


def test_matches_the_unbatched_reference_procedure(embedded, rows):
    expected = reference_scores(embedded.model, embedded.tokenizer, rows)
    got = score(rows, batch_size=16)
    assert got["score_status"] == ["ok"] * len(rows)
    for i, row in enumerate(expected):
        for key in KEYS:
            assert got[key][i] == pytest.approx(row[key], rel=1e-4), (i, key)


def test_batch_size_one_and_sixteen_agree(embedded, rows):
    one, sixteen = score(rows, batch_size=1), score(rows, batch_size=16)
    for key in KEYS:
        assert sixteen[key] == pytest.approx(one[key], rel=1e-5), key


def test_chat_spans_cover_the_user_text_and_the_assistant_turn(embedded):
    encoder = TokenizerEncoder(embedded.tokenizer)
    [(conditioned, alone)] = chat_sequences(encoder, ["Name a primary colour."], ["Red."])
    spans = {name: (start, end) for name, start, end in conditioned.spans}
    decode = embedded.tokenizer.decode
    assert decode(conditioned.ids[slice(*spans[QUESTION])]) == "Name a primary colour."
    assert decode(conditioned.ids[slice(*spans[ANSWER_GIVEN_QUESTION])]) == "Red.<|im_end|>"
    [(_, a_start, a_end)] = alone.spans
    assert decode(alone.ids[a_start:a_end]) == "Red.<|im_end|>"
    out = Score(model="embedded", device="cpu", mode="chat")({"instruction": ["Name a primary colour."], "output": ["Red."]})
    assert out["score_status"] == ["ok"]
