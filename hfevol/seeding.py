"""Randomness that is local to a row: seeds derived from (run seed, stage, row key)."""

from __future__ import annotations

import hashlib


def row_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed for one row, stable across processes, platforms and Python versions.

    ``parts`` name the row and the stage (for example the round and the row position), so
    two stages or two rows never share a random stream. Global RNG state is never used.
    """
    text = "\x1f".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def text_key(text: str) -> int:
    """A stable non-negative integer for a piece of text."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1
