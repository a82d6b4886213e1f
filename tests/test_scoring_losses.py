"""The loss core against the reference procedure, on a tiny random model (no weights to load)."""

from __future__ import annotations

import math
import random

import pytest
import torch
from _tiny_lm import char_tokenizer, tiny_llama
from reference_eval_loss import reference_losses

from hfevol.scoring import ANSWER, ANSWER_GIVEN_QUESTION, QUESTION, SpanLoss, TokenizerEncoder, TokenSequence, reference_sequences, span_losses
from hfevol.scoring.losses import _buckets, _split_head


@pytest.fixture(scope="module")
def tokenizer():
    return char_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_llama(len(tokenizer))


def make_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    words = ["sky", "blue", "why", "sum", "2+3", "code", "list", "sort", "Hello,", "world!", "a", "b\n", "  "]
    rows = []
    for _ in range(n):
        q = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
        a = " ".join(rng.choice(words) for _ in range(rng.randint(1, 30)))
        rows.append((q, a))
    return rows


def core_losses(model, tokenizer, rows, **kwargs) -> list[tuple[float, float, float]]:
    pairs = reference_sequences(TokenizerEncoder(tokenizer), [q for q, _ in rows], [a for _, a in rows])
    out = span_losses(model, [s for pair in pairs for s in pair], **kwargs)
    return [(out[2 * i][QUESTION].mean, out[2 * i][ANSWER_GIVEN_QUESTION].mean, out[2 * i + 1][ANSWER].mean) for i in range(len(rows))]


def assert_close(a, b, rel):
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            assert u == pytest.approx(v, rel=rel), (x, y)


def test_two_batched_passes_match_the_three_pass_reference(model, tokenizer):
    rows = make_rows(20)
    expected = [reference_losses(model, tokenizer, q, "", a) for q, a in rows]
    assert_close(core_losses(model, tokenizer, rows, batch_size=8), expected, 1e-5)


def test_batch_size_padding_and_chunking_do_not_change_values(model, tokenizer):
    rows = make_rows(24, seed=1)
    alone = core_losses(model, tokenizer, rows, batch_size=1)
    assert_close(core_losses(model, tokenizer, rows, batch_size=16), alone, 1e-5)
    assert_close(core_losses(model, tokenizer, rows, batch_size=16, chunk_tokens=3), alone, 1e-5)
    assert_close(core_losses(model, tokenizer, rows, batch_size=16, max_batch_tokens=64), alone, 1e-5)


def test_logits_are_computed_in_chunks_never_for_the_whole_batch(model, tokenizer):
    rows = make_rows(8, seed=2)
    seen = []
    hook = model.get_output_embeddings().register_forward_hook(lambda _m, args, _out: seen.append(tuple(args[0].shape)))
    try:
        core_losses(model, tokenizer, rows, batch_size=8, chunk_tokens=5)
    finally:
        hook.remove()
    assert seen, "the head was never called"
    head_calls = [s for s in seen if s != (1, 8, 32)]  # the one-off probe of the head path
    assert all(len(s) == 2 and s[0] <= 5 for s in head_calls), seen


def test_length_buckets_respect_both_limits():
    lengths = [5, 50, 7, 6, 40, 8, 100]
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches = _buckets(order, lengths, batch_size=3, max_batch_tokens=120)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= 120
    # sorted: 5 6 7 | 8 40 (40*2 = 80) | 50 (50*3 = 150 > 120) | 100 (100*2 = 200 > 120)
    assert batches == [[0, 3, 2], [5, 4], [1], [6]]


def test_empty_spans_are_not_run_and_count_zero(model):
    calls = []
    hook = model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        out = span_losses(model, [TokenSequence((1,), (("a", 1, 1),)), TokenSequence((5, 6), (("a", 1, 1),))])
    finally:
        hook.remove()
    assert out == [{"a": SpanLoss(0.0, 0)}, {"a": SpanLoss(0.0, 0)}]
    assert math.isnan(out[0]["a"].mean)
    assert calls == []


def test_a_sequence_longer_than_the_context_is_refused(tokenizer):
    small = tiny_llama(len(tokenizer), context=8)
    with pytest.raises(ValueError, match="context of 8"):
        span_losses(small, [TokenSequence(tuple(range(1, 11)), (("a", 1, 10),))])


def test_a_model_whose_logits_are_not_a_plain_head_falls_back_to_full_logits(tokenizer):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(0)
    config = Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=512,
        final_logit_softcapping=2.0,
        initializer_range=0.3,
    )
    capped = Gemma2ForCausalLM(config).eval()
    assert _split_head(capped) is None  # softcapping sits between the head and the logits
    rows = make_rows(6, seed=3)
    expected = [reference_losses(capped, tokenizer, q, "", a) for q, a in rows]
    assert_close(core_losses(capped, tokenizer, rows, batch_size=4), expected, 1e-5)


def test_the_plain_llama_head_is_split(model):
    assert _split_head(model) is not None
