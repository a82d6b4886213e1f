"""The one score histogram (same values, same PNG bytes) and the one finite-mean helper."""

from __future__ import annotations

import math
import struct
import zlib

from hfevol.scoring.plot import histogram_png
from hfevol.stats import finite, finite_mean


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (type, payload) chunks of a PNG, read by hand (no imaging library involved)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, payload = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length : at + 12 + length])[0] == zlib.crc32(kind + payload)
        chunks.append((kind, payload))
        at += 12 + length
    return chunks


def test_the_same_values_give_the_same_png_bytes(tmp_path):
    values = [0.2, 0.5, 0.5, 0.9, 1.3, math.nan, None, 0.7]
    first = histogram_png(values, tmp_path / "a" / "h.png", label="ic_ifd", title="IC-IFD")
    second = histogram_png(list(values), tmp_path / "b.png", label="ic_ifd", title="IC-IFD")
    assert first == tmp_path / "a" / "h.png" and second == tmp_path / "b.png"
    assert first.read_bytes() == second.read_bytes()
    chunks = _png_chunks(first.read_bytes())
    assert [k for k, _ in chunks][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    text = [payload for kind, payload in chunks if kind in (b"tEXt", b"iTXt", b"zTXt")]
    assert not any(b"matplotlib" in t.lower() or b"software" in t.lower() for t in text)  # no version stamp
    other = histogram_png([0.2, 0.5, 0.9], tmp_path / "c.png", label="ic_ifd", title="IC-IFD")
    assert other.read_bytes() != first.read_bytes()


def test_nothing_finite_draws_nothing(tmp_path):
    assert histogram_png([None, math.nan, math.inf], tmp_path / "h.png", label="x", title="x") is None
    assert not (tmp_path / "h.png").exists()


def test_finite_mean_leaves_out_missing_and_undefined_values():
    assert finite([1, None, math.nan, 2.5, -math.inf]) == [1.0, 2.5]
    assert finite_mean([1.0, None, math.nan, 2.0, math.inf, 6.0]) == 3.0
    assert finite_mean([]) is None and finite_mean([None, math.nan]) is None
    assert math.isnan(finite_mean([math.nan], math.nan))
    assert finite_mean([4], math.nan) == 4.0
