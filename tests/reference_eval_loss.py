"""An independent oracle: the reference IFD / IC-IFD procedure, transcribed plainly.

This follows the procedure of the paper's ``Evol_Instruct/eval_loss.py`` as FIELD_NOTES
§1.1 describes it, one row at a time and with three forward passes, each a plain
``model(input_ids=..., labels=...).loss`` (transformers' own mean cross-entropy):

1. the question + answer text, labels kept only before position ``n``  -> L(Q)
2. the answer alone, every label kept                                    -> L(A)
3. the question + answer text, labels kept only from position ``n`` on   -> L(A|Q)

No batching, no padding, no shared code with :mod:`hfevol.scoring`: the tests compare
hfevol's batched two-pass core against it, and the benchmark times it.
"""

from __future__ import annotations

from typing import Any

IGNORE = -100  # the label value transformers' loss skips


def reference_losses(model: Any, tokenizer: Any, instruction: str, input_text: str, output: str) -> tuple[float, float, float]:
    """``(L(Q), L(A|Q), L(A))`` for one row; a loss over no tokens comes back as NaN."""
    import torch

    question = f"{instruction}\n{input_text}" if input_text else instruction
    conversation = f"{question}\n{output}"
    n = len(tokenizer(question).input_ids)
    ids = torch.tensor([tokenizer(conversation).input_ids], device=model.device)
    answer_ids = torch.tensor([tokenizer(output).input_ids], device=model.device)

    question_labels = ids.clone()
    question_labels[0, n:] = IGNORE
    answer_labels = ids.clone()
    answer_labels[0, :n] = IGNORE
    with torch.no_grad():
        loss_q = model(input_ids=ids, labels=question_labels).loss.item()
        loss_a = model(input_ids=answer_ids, labels=answer_ids).loss.item()
        loss_a_given_q = model(input_ids=ids, labels=answer_labels).loss.item()
    return loss_q, loss_a_given_q, loss_a


def reference_scores(model: Any, tokenizer: Any, rows: list[dict[str, str]]) -> list[dict[str, float]]:
    """Per-row losses with IFD = L(A|Q)/L(A) and IC-IFD = L(A|Q)/(L(Q)·L(A))."""
    out = []
    for row in rows:
        loss_q, loss_aq, loss_a = reference_losses(model, tokenizer, row["instruction"], row.get("input") or "", row["output"])
        out.append({"loss_q": loss_q, "loss_a_given_q": loss_aq, "loss_a": loss_a, "ifd": loss_aq / loss_a, "ic_ifd": loss_aq / (loss_q * loss_a)})
    return out
