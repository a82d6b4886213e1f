"""Keep secrets out of messages and records: URLs without their credentials, headers without their values.

A URL's user-info (``user:password@``), its query values (``?api_key=...``) and its
fragment may hold a secret; an HTTP header's value may too, whatever its name. Whatever
hfevol prints, raises or writes to a record (``hfevol_run.json``, a dataset card, a log)
goes through these helpers first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

MASK = "***"
"""What stands in place of a removed secret."""


def redact_url(url: object) -> str:
    """``url`` as text with its user-info, every query value and its fragment replaced by :data:`MASK`.

    Query parameter names stay (``?api_key=***``), so that a message still says what was
    wrong. Text that does not parse as a URL loses everything from the first ``?`` or ``#``,
    and everything before an ``@``.
    """
    from urllib.parse import urlsplit, urlunsplit

    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        head = text.split("?", 1)[0].split("#", 1)[0]
        return (MASK + "@" + head.rpartition("@")[2]) if "@" in head else head + (MASK if head != text else "")
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    query = "&".join(f"{name}={MASK}" if sep else MASK for name, sep, _ in (item.partition("=") for item in parts.query.split("&") if item))
    if parts.query and not query:
        query = MASK
    return urlunsplit((parts.scheme, netloc, parts.path, query, MASK if parts.fragment else ""))


def header_names(headers: Mapping[str, str] | Iterable[str]) -> list[str]:
    """The names of ``headers`` (a mapping, or ``'Name: value'`` items as ``--header`` takes them), never a value."""
    if isinstance(headers, Mapping):
        return [str(name) for name in headers]
    return [str(item).partition(":")[0].strip() for item in headers]
