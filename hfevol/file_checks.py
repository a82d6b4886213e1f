"""Find where a seed file stops being readable, so the error names its line.

``datasets`` reads JSON and CSV through pyarrow, whose errors count rows per block (not
lines of the file) and lose the file name, and it loads JSON Lines with bytes that are not
UTF-8 into strings that crash later. These checks read the file themselves: the UTF-8 one
before loading, the JSON one only after ``datasets`` has refused the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import DataError

TEXT_SUFFIXES = frozenset({".json", ".jsonl", ".csv", ".txt"})
"""Files ``datasets`` reads as UTF-8 text."""

_CHUNK = 1 << 20


def check_utf8(path: Path, source: str) -> None:
    """Raise :class:`DataError` naming the first line (1-based) of ``path`` that is not valid UTF-8.

    The file is read in blocks cut at line ends, so memory stays small for any file size.
    """
    line = 1  # the line the next block starts on
    carry = b""
    with path.open("rb") as f:
        while True:
            block = f.read(_CHUNK)
            data = carry + block
            cut = len(data) if not block else data.rfind(b"\n") + 1
            piece, carry = data[:cut], data[cut:]
            try:
                piece.decode("utf-8")
            except UnicodeDecodeError as exc:
                before = piece[: exc.start]
                at_line = line + before.count(b"\n")
                column = exc.start - (before.rfind(b"\n") + 1) + 1
                raise DataError(
                    f"{source!r} is not UTF-8 text: line {at_line}, byte {column} (0x{piece[exc.start]:02x}) cannot be decoded",
                    hint="save the file as UTF-8 (for example `iconv -f latin1 -t utf-8 FILE > NEW`), or convert it to parquet.",
                ) from None
            line += piece.count(b"\n")
            if not block:
                return


def json_problem(path: Path) -> str | None:
    """Where ``path`` (``.json`` or ``.jsonl``, UTF-8) is not valid JSON: ``"line N: ..."``, or None.

    A ``.jsonl`` file, or a ``.json`` file whose first line is an object on its own, is read
    as JSON Lines: each non-blank line must be one object. Any other ``.json`` file must be
    one JSON document.
    """
    with path.open(encoding="utf-8") as f:
        first = next((text for text in f if text.strip()), None)
    if first is None:
        return None
    if path.suffix.lower() == ".json" and not _is_object(first):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            return f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
        return None
    with path.open(encoding="utf-8") as f:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                return f"line {number}, column {exc.colno}: {exc.msg}"
            if not isinstance(value, dict):
                return f"line {number}: a JSON {type(value).__name__}, not an object (one row per line)"
    return None


def _is_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False
