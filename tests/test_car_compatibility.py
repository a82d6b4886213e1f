"""The student's loss on responses: response tokens only, the instruction as context."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hfevol.car.compatibility import RowLoss, StudentLoss
from hfevol.errors import ConfigError, ModelNotFoundError
from hfevol.scoring.construction import ANSWER_GIVEN_QUESTION

RESPONSE = "Red, blue and yellow are the primary colours of paint."


def scored_ids(student: StudentLoss, instruction: str, response: str = RESPONSE) -> list[int]:
    full, _ = student.sequences([instruction], [response])[0]
    ((start, end),) = [(s, e) for name, s, e in full.spans if name == ANSWER_GIVEN_QUESTION]
    return list(full.ids[start:end])


def test_a_student_that_cannot_be_loaded(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="the student model cannot be loaded"):
        StudentLoss(student=str(tmp_path / "missing")).measure(["q"], ["a"])
    with pytest.raises(ConfigError, match="no chat template named 'fancy'"):
        StudentLoss(template="fancy")


def test_a_base_student_needs_a_named_template(tmp_path: Path) -> None:
    from test_car_reward import tiny_reward_model  # a tiny Llama: it loads as a causal LM too

    folder = tiny_reward_model(tmp_path / "base", chat_template=None)
    student = StudentLoss(student=str(folder), device="cpu")
    with pytest.raises(ConfigError, match="no chat template.*\n.*--student-template plain"):
        student.measure(["say hello"], ["hello"])
    named = StudentLoss(student=str(folder), template="plain", device="cpu")
    assert named.measure(["say hello"], ["hello"])[0].tokens > 0


@pytest.mark.slow
@pytest.mark.parametrize("template", [None, "plain"])
def test_only_response_tokens_are_scored_whatever_the_instruction(embedded, template: str | None) -> None:
    student = StudentLoss(template=template, device="cpu")
    tokenizer = embedded.tokenizer
    short = scored_ids(student, "Colours?")
    long = scored_ids(student, "Please list, in one sentence, the three primary colours that painters mix, and nothing else at all.")
    assert short == long  # the instruction changes the context, never which tokens are scored
    response = tokenizer(RESPONSE, add_special_tokens=False).input_ids
    if template is None:  # ChatML: the response, then the turn's closing token
        assert short == response + [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    else:  # plain: the space after "Assistant:" is part of the completion too, then the end-of-sequence token
        assert short == tokenizer(" ", add_special_tokens=False).input_ids + response + [tokenizer.eos_token_id]


@pytest.mark.slow
def test_loss_matches_transformers_masked_loss(embedded) -> None:
    import torch

    student = StudentLoss(device="cpu")
    instruction = "Name the primary colours."
    got = student.measure([instruction], [RESPONSE])[0]
    full, _ = student.sequences([instruction], [RESPONSE])[0]
    ((start, end),) = [(s, e) for name, s, e in full.spans if name == ANSWER_GIVEN_QUESTION]
    ids = torch.tensor([full.ids[:end]])
    labels = torch.full_like(ids, -100)
    labels[0, start:end] = ids[0, start:end]  # transformers masks everything else, as fine-tuning on responses does
    with torch.inference_mode():
        reference = embedded.model(input_ids=ids, labels=labels).loss.item()
    assert got.tokens == end - start
    assert got.mean == pytest.approx(reference, rel=1e-4)
    # the instruction is context: a different instruction changes the loss of the same tokens
    other = student.measure(["Write a poem about the sea."], [RESPONSE])[0]
    assert other.tokens == got.tokens and other.mean != pytest.approx(got.mean, rel=1e-3)
    assert got.ifd == pytest.approx(got.mean / (got.alone_total / got.alone_tokens))


def test_row_loss_ifd_is_the_ratio_of_mean_losses_and_nan_when_undefined():
    row = RowLoss(total=3.0, tokens=4, alone_total=1.5, alone_tokens=1, truncated=False)
    assert row.mean == 0.75 and row.ifd == 0.5  # (3 / 4) / (1.5 / 1)
    assert math.isnan(RowLoss(total=0.0, tokens=0, alone_total=1.0, alone_tokens=1, truncated=False).ifd)  # no response tokens
    assert math.isnan(RowLoss(total=1.0, tokens=1, alone_total=0.0, alone_tokens=0, truncated=False).ifd)  # no alone pass
    assert math.isnan(RowLoss(total=1.0, tokens=1, alone_total=0.0, alone_tokens=2, truncated=False).ifd)  # L(A) is zero
