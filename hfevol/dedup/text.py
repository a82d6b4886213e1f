"""The text of a row, its normalised form, and its word n-grams.

Normalisation (for exact duplicates and for n-grams alike): Unicode NFKC, case folded,
every punctuation or symbol character replaced by a space, runs of whitespace collapsed.
So ``"Hello,  World!"`` and ``"hello world"`` are one text.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

_SPACE = re.compile(r"\s+")
_PUNCT_CATEGORIES = ("P", "S")  # punctuation and symbols
_TABLE: dict[int, str] = {}


def row_text(instruction: Any, input: Any = None) -> str:
    """The prompt of a row: ``instruction``, then ``input`` on the next line when it is not empty."""
    first = "" if instruction is None else str(instruction)
    second = "" if input is None else str(input)
    return f"{first}\n{second}" if second.strip() else first


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in _PUNCT_CATEGORIES


def normalise(text: str) -> str:
    """``text`` folded for comparison: NFKC, case folded, punctuation and symbols as spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    for ch in set(text):
        if ch not in _TABLE and ord(ch) > 32:
            _TABLE[ord(ch)] = " " if _is_punct(ch) else ch
    return _SPACE.sub(" ", text.translate(_TABLE)).strip()


def text_hash(text: str) -> str:
    """SHA-1 of the normalised text (hex): equal for exact duplicates after normalisation."""
    return hashlib.sha1(normalise(text).encode("utf-8")).hexdigest()


def words(text: str) -> list[str]:
    """The normalised words of ``text``."""
    norm = normalise(text)
    return norm.split(" ") if norm else []


def ngrams(tokens: Sequence[str], n: int) -> list[str]:
    """The word ``n``-grams of ``tokens``, each joined by one space; a text shorter than ``n``
    words gives one gram, the whole text (so that short prompts still compare); no words give none."""
    if not tokens:
        return []
    if len(tokens) <= n:
        return [" ".join(tokens)]
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
