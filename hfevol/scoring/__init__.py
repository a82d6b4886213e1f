"""Instruction-data scoring without training: IFD, IC-IFD, and selection by score.

- :class:`Score`: a ``datasets`` map transform that adds the losses and scores
  (:class:`RowScoring` is what it shares with the endpoint scorer).
- :class:`ScoringModel`: the local scorers' front end (load, encode, fit, span losses).
- :func:`select`: keep the top rows by a score column.
- :mod:`.losses`: the loss core (token sequences with named spans -> mean token losses),
  shared with other scorers.
"""

from __future__ import annotations

from .construction import (
    ANSWER,
    ANSWER_GIVEN_QUESTION,
    MODES,
    QUESTION,
    Encoder,
    TokenizerEncoder,
    chat_answer_sequences,
    chat_sequences,
    question_text,
    reference_sequences,
)
from .frontend import ScoringModel
from .ifd import IC_IFD_FORMS, IFD_FORMS, RowScores, ic_ifd, ifd, row_scores
from .losses import SpanLoss, TokenSequence, span_losses
from .select import Selection, plan_selection, select
from .transform import OUTPUT_COLUMNS, RowScoring, Score

__all__ = [
    "ANSWER",
    "ANSWER_GIVEN_QUESTION",
    "IC_IFD_FORMS",
    "IFD_FORMS",
    "MODES",
    "OUTPUT_COLUMNS",
    "QUESTION",
    "RowScores",
    "RowScoring",
    "Encoder",
    "Score",
    "ScoringModel",
    "Selection",
    "SpanLoss",
    "TokenSequence",
    "TokenizerEncoder",
    "chat_answer_sequences",
    "chat_sequences",
    "ic_ifd",
    "ifd",
    "question_text",
    "reference_sequences",
    "plan_selection",
    "row_scores",
    "select",
    "span_losses",
]
