"""Texts and token spans, worked out by hand with a one-token-per-character tokenizer."""

from __future__ import annotations

import pytest
from _tiny_lm import char_tokenizer, ids_of

from hfevol.errors import ConfigError
from hfevol.scoring import ANSWER, ANSWER_GIVEN_QUESTION, QUESTION, TokenizerEncoder, TokenSequence, chat_sequences, question_text, reference_sequences

BOS = 1


@pytest.fixture(scope="module")
def encoder() -> TokenizerEncoder:
    return TokenizerEncoder(char_tokenizer())


def spans(seq: TokenSequence) -> dict[str, tuple[int, int]]:
    return {name: (start, end) for name, start, end in seq.spans}


def test_question_text_follows_the_reference():
    assert question_text("Sum these.", "2 3") == "Sum these.\n2 3"
    assert question_text("Sum these.", "") == "Sum these."
    assert question_text("Sum these.", None) == "Sum these."


def test_reference_spans_by_hand(encoder):
    [(conditioned, alone)] = reference_sequences(encoder, ["ab"], ["cd"])
    # "ab\ncd" with BOS: [<s>, a, b, \n, c, d]; n = len([<s>, a, b]) = 3
    assert list(conditioned.ids) == [BOS, *ids_of("ab\ncd")]
    assert spans(conditioned) == {QUESTION: (1, 3), ANSWER_GIVEN_QUESTION: (3, 6)}  # L(A|Q) includes "\n"
    assert list(alone.ids) == [BOS, *ids_of("cd")]
    assert spans(alone) == {ANSWER: (1, 3)}


def test_reference_spans_with_an_input(encoder):
    question = question_text("ab", "xy")
    [(conditioned, _)] = reference_sequences(encoder, [question], ["z"])
    assert list(conditioned.ids) == [BOS, *ids_of("ab\nxy\nz")]
    assert spans(conditioned) == {QUESTION: (1, 6), ANSWER_GIVEN_QUESTION: (6, 8)}


def test_chat_spans_by_hand(encoder):
    [(conditioned, alone)] = chat_sequences(encoder, ["ab"], [" cd "])  # chat mode strips
    user, assistant, end, newline = 4, 5, 6, ids_of("\n")[0]
    # "<|user|>ab<|end|>\n<|assistant|>cd<|end|>\n"
    assert list(conditioned.ids) == [user, *ids_of("ab"), end, newline, assistant, *ids_of("cd"), end, newline]
    # L(Q): the user content; L(A|Q): the answer plus the end-of-turn marker
    assert spans(conditioned) == {QUESTION: (1, 3), ANSWER_GIVEN_QUESTION: (6, 9)}
    # the answer after an empty user turn: "<|user|><|end|>\n<|assistant|>cd<|end|>\n"
    assert list(alone.ids) == [user, end, newline, assistant, *ids_of("cd"), end, newline]
    assert spans(alone) == {ANSWER: (4, 7)}


def test_chat_mode_needs_a_chat_template():
    plain = TokenizerEncoder(char_tokenizer(chat_template=False), model_name="model 'x'")
    with pytest.raises(ConfigError, match="model 'x' has no chat template") as info:
        chat_sequences(plain, ["ab"], ["cd"])
    assert "mode='reference'" in str(info.value)


def test_chat_template_that_rewrites_the_text_is_refused():
    tokenizer = char_tokenizer()
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] | upper }}\n{% endfor %}"
    with pytest.raises(ConfigError, match="changes the instruction"):
        chat_sequences(TokenizerEncoder(tokenizer), ["ab"], ["cd"])


def test_truncation_keeps_the_first_tokens_and_clips_spans():
    seq = TokenSequence(tuple(range(10)), (("q", 1, 4), ("a", 4, 10)))
    assert seq.truncate(None) is seq and seq.truncate(10) is seq
    cut = seq.truncate(6)
    assert cut.ids == tuple(range(6)) and cut.truncated
    assert cut.spans == (("q", 1, 4), ("a", 4, 6))
    assert seq.truncate(3).spans == (("q", 1, 3), ("a", 3, 3))  # the answer is cut away
    with pytest.raises(ValueError, match="at least 2"):
        seq.truncate(1)


def test_a_span_must_fit_and_never_start_at_the_first_token():
    with pytest.raises(ValueError, match="start must be >= 1"):
        TokenSequence((1, 2, 3), (("q", 0, 2),))
    with pytest.raises(ValueError):
        TokenSequence((1, 2, 3), (("q", 1, 4),))
    assert TokenSequence((), (("a", 1, 1),)).spans == (("a", 1, 1),)  # an empty span fits anything


def test_an_answer_with_no_tokens_gets_an_empty_span(encoder):
    tokenizer = char_tokenizer()
    tokenizer._tokenizer.post_processor = None  # a tokenizer that adds no BOS: "" has no token at all
    [(conditioned, alone)] = reference_sequences(TokenizerEncoder(tokenizer), ["ab"], [""])
    assert alone.ids == () and spans(alone) == {ANSWER: (1, 1)}
    assert spans(conditioned) == {QUESTION: (1, 2), ANSWER_GIVEN_QUESTION: (2, 3)}  # "ab\n", n = 2
