"""The token sequences a row is scored on, and which tokens each loss averages over.

Kept apart from the model so that another scorer (an endpoint's prefill log-probs) can
reuse the exact same texts and token spans: it needs only an :class:`Encoder`.

Span names: :data:`QUESTION` (L(Q)), :data:`ANSWER_GIVEN_QUESTION` (L(A|Q)) and
:data:`ANSWER` (L(A)).

**Reference mode** reproduces the reference script of Hui et al. (``eval_loss.py``):

- ``Q = instruction``, or ``instruction + "\\n" + input`` when ``input`` is non-empty;
- the conditioned text is ``Q + "\\n" + output``, tokenized with special tokens;
- ``n = len(encode(Q))``, counted with special tokens;
- L(A|Q) averages over the conditioned text's tokens ``n`` to the end (the ``"\\n"``
  separator token included); L(Q) over its tokens ``1 .. n-1``, from the same pass (the
  first token is never predicted);
- L(A) averages over ``encode(output)`` scored alone, tokens ``1`` to the end.

Spans are positions counted as the reference counts them, even where ``Q``'s tokens are
not a prefix of the conditioned text's tokens.

**Chat mode** formats the row as fine-tuning on a chat model would: the question as the
user turn and the answer as the assistant turn of the tokenizer's chat template (both
stripped of surrounding whitespace). The rendered text is cut at the question, the end
of the generation prompt and the answer, and each piece is tokenized on its own, so every
span falls on a token boundary:

- L(Q) averages over the question's tokens inside the user turn;
- L(A|Q) over every token after the generation prompt, up to the answer's end, plus the
  one token that closes the turn (the end-of-turn marker that fine-tuning trains);
- L(A) over the same assistant-turn tokens after an empty user turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..errors import ConfigError
from .losses import TokenSequence

QUESTION = "q"
ANSWER_GIVEN_QUESTION = "a_given_q"
ANSWER = "a"

Mode = Literal["reference", "chat"]
MODES: tuple[str, ...] = ("reference", "chat")

SEPARATOR = "\n"
"""What joins the instruction and its input, and the question and the answer, in reference mode."""


class Encoder(Protocol):
    """Text to token ids, the way the scoring model sees it."""

    def encode(self, texts: Sequence[str], *, special_tokens: bool) -> list[list[int]]:
        """Token ids of each text, with or without the tokenizer's special tokens."""

    def render_chat(self, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
        """The chat template's text for ``messages``."""


@dataclass
class TokenizerEncoder:
    """An :class:`Encoder` over a transformers tokenizer."""

    tokenizer: Any
    model_name: str = "the model"

    def encode(self, texts: Sequence[str], *, special_tokens: bool) -> list[list[int]]:
        if not texts:
            return []
        return [list(ids) for ids in self.tokenizer(list(texts), add_special_tokens=special_tokens).input_ids]

    def render_chat(self, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
        self.require_chat_template()
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def require_chat_template(self) -> None:
        """Raise :class:`ConfigError` if the tokenizer has no chat template."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(
                f"{self.model_name} has no chat template, so mode='chat' cannot format the rows",
                hint="use mode='reference' (plain text, as the paper's script), or an instruct model with a chat template.",
            )


def question_text(instruction: str, input: str | None) -> str:
    """``instruction``, or ``instruction + "\\n" + input`` when ``input`` is non-empty (as the reference)."""
    return instruction + SEPARATOR + input if input else instruction


def conditioned_text(question: str, answer: str) -> str:
    """The reference's conditioned text, ``Q + "\\n" + A``; its token ids are the conditioned sequence's."""
    return question + SEPARATOR + answer


def reference_sequences(encoder: Encoder, questions: Sequence[str], answers: Sequence[str]) -> list[tuple[TokenSequence, TokenSequence]]:
    """For each row: the conditioned sequence (spans L(Q), L(A|Q)) and the answer alone (span L(A)).

    The ids are ``encode(conditioned_text(q, a))`` and ``encode(a)``, with special tokens.
    """
    fulls = [conditioned_text(q, a) for q, a in zip(questions, answers, strict=True)]
    q_ids = encoder.encode(questions, special_tokens=True)
    full_ids = encoder.encode(fulls, special_tokens=True)
    a_ids = encoder.encode(answers, special_tokens=True)
    out = []
    for q, full, alone in zip(q_ids, full_ids, a_ids):
        size = len(full)
        n = min(len(q), size)
        boundary = min(max(n, 1), size)
        conditioned = TokenSequence(tuple(full), ((QUESTION, 1, max(n, 1)), (ANSWER_GIVEN_QUESTION, boundary, size)))
        answer = TokenSequence(tuple(alone), ((ANSWER, 1, max(1, len(alone))),))
        out.append((conditioned, answer))
    return out


def chat_sequences(encoder: Encoder, questions: Sequence[str], answers: Sequence[str]) -> list[tuple[TokenSequence, TokenSequence]]:
    """Like :func:`reference_sequences`, with the rows formatted by the chat template."""
    conditioned = chat_answer_sequences(encoder, questions, answers)
    alone = _chat_build(encoder, [("", a.strip(), ANSWER) for a in answers])
    return list(zip(conditioned, alone, strict=True))


def chat_answer_sequences(encoder: Encoder, questions: Sequence[str], answers: Sequence[str]) -> list[TokenSequence]:
    """Each (question, answer) as one chat-formatted sequence, spans L(Q) and L(A|Q).

    This is the loss fine-tuning on the row would see (the answer's tokens with the
    question as context); CAR's student loss uses it directly.
    """
    return _chat_build(encoder, [(q.strip(), a.strip(), ANSWER_GIVEN_QUESTION) for q, a in zip(questions, answers, strict=True)])


def _chat_build(encoder: Encoder, items: list[tuple[str, str, str]]) -> list[TokenSequence]:
    layouts = [_chat_layout(encoder, question, answer, span) for question, answer, span in items]
    encoded = iter(encoder.encode([piece for pieces, _ in layouts for piece in pieces], special_tokens=False))
    sequences = []
    for pieces, spans_by_piece in layouts:
        ids: list[int] = []
        starts = []
        for _ in pieces:
            starts.append(len(ids))
            ids.extend(next(encoded))
        starts.append(len(ids))
        spans = []
        for name, first, last, extra in spans_by_piece:
            start, end = max(starts[first], 1), min(starts[last + 1] + extra, len(ids))
            spans.append((name, min(start, end), end))
        sequences.append(TokenSequence(tuple(ids), tuple(spans)))
    return sequences


def _chat_layout(encoder: Encoder, question: str, answer: str, answer_span: str) -> tuple[list[str], list[tuple[str, int, int, int]]]:
    """Cut the rendered conversation into pieces; spans are (name, first piece, last piece, extra tokens)."""
    user = {"role": "user", "content": question}
    prompt = encoder.render_chat([user], generation_prompt=True)
    full = encoder.render_chat([user, {"role": "assistant", "content": answer}], generation_prompt=False)
    if not full.startswith(prompt):
        raise ConfigError(
            "the chat template renders the user turn differently with and without the answer, so the answer's tokens cannot be located",
            hint="use mode='reference'.",
        )
    cuts = [0]
    spans: list[tuple[str, int, int, int]] = []
    if question:
        q_at = prompt.rfind(question)  # the last occurrence: a system prompt may come first
        if q_at < 0:
            raise ConfigError("the chat template changes the instruction's text, so its tokens cannot be located", hint="use mode='reference'.")
        cuts += [q_at, q_at + len(question)]
        spans.append((QUESTION, 1, 1, 0))
    a_at = full.find(answer, len(prompt))
    if a_at < 0:
        raise ConfigError("the chat template changes the answer's text, so its tokens cannot be located", hint="use mode='reference'.")
    first_completion_piece = len(cuts)
    cuts += [len(prompt), a_at, a_at + len(answer), len(full)]
    pieces = [full[lo:hi] for lo, hi in zip(cuts, cuts[1:])]
    # the completion pieces: [generation prompt end .. answer start), answer; then the tail
    spans.append((answer_span, first_completion_piece, first_completion_piece + 1, 1))
    return pieces, spans
