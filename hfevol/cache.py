"""Row-level resume: a persistent request cache in SQLite, and a backend wrapper that uses it.

Every completed request is written (and committed) the moment its answer arrives, so a
job killed at any point, ``kill -9`` included, loses at most the requests in flight;
running it again sends no request whose answer is in the cache. The key is a SHA-256 of
the backend's model identity (:meth:`Backend.cache_identity`: served model id and revision
for an endpoint; model, revision and dtype for a local model), the full chat messages
(which hold the rendered prompt template), the sampling parameters and the seed.

Whether a request asks for top-1 probabilities (``GenerationRequest.top1``) is not in the key:
the stored answer is the superset. An answer stored with them also answers the request without
them; a request that asks for them, whose stored answer lacks them, is sent again and its new
answer replaces the old one. So turning ``--record-top1`` on over a filled cache sends only
the rows whose answers lack them.

The file is in WAL mode: readers never block, and several processes can write to it at
once (SQLite serialises the commits; ``busy_timeout`` makes writers wait instead of
failing). Commits use ``synchronous=NORMAL``: they survive a killed process, and only the
last few can be lost if the machine itself loses power.

Only successful, non-empty answers are stored: failed rows are sent again on the next run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backends.base import Backend, GenerationRequest, GenerationResult
from .errors import CacheError, OutputError

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    result TEXT NOT NULL,
    created REAL NOT NULL
);
"""


def request_key(identity: dict[str, Any], request: GenerationRequest) -> str:
    """The cache key of ``request`` sent to a backend with this ``identity``."""
    payload = {"model": identity, **request_record(request)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def request_record(request: GenerationRequest) -> dict[str, Any]:
    return {"messages": [list(m) for m in request.messages], "params": request.params.to_dict(), "seed": request.seed}


class RequestCache:
    """Completed requests in one SQLite file. Safe across threads and processes (one connection per both)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
            (version,) = conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"cannot use {self.path} as a request cache: {exc}", hint="delete the file, or give another cache path.") from exc
        if version != SCHEMA_VERSION:
            raise CacheError(f"{self.path} was written by another hfevol cache version ({version})", hint="give another cache path.")
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run one statement; a full disk or an unwritable file becomes a one-line :class:`OutputError`."""
        try:
            return self._conn().execute(sql, params)
        except sqlite3.OperationalError as exc:
            raise OutputError(
                f"the request cache {self.path} cannot be used: {exc}",
                hint="free some disk space (or give --cache another place) and run the command again: every answer stored so far is kept.",
            ) from exc

    def get(self, key: str) -> GenerationResult | None:
        row = self._execute("SELECT result FROM results WHERE key = ?", (key,)).fetchone()
        return _result_from_json(row[0]) if row else None

    def get_many(self, keys: Sequence[str]) -> dict[str, GenerationResult]:
        found: dict[str, GenerationResult] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):  # SQLite's limit on bound parameters
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, result in self._execute(f"SELECT key, result FROM results WHERE key IN ({marks})", chunk):
                found[key] = _result_from_json(result)
        return found

    def put(self, key: str, request: GenerationRequest, result: GenerationResult) -> None:
        self._execute(
            "INSERT OR REPLACE INTO results (key, request, result, created) VALUES (?, ?, ?, ?)",
            (key, json.dumps(request_record(request), ensure_ascii=False), json.dumps(dataclasses.asdict(result), ensure_ascii=False), time.time()),
        )

    def __len__(self) -> int:
        return int(self._execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def requests(self) -> list[dict[str, Any]]:
        """Every stored request (messages, params, seed), for inspection."""
        return [json.loads(r) for (r,) in self._execute("SELECT request FROM results ORDER BY created")]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None


def _result_from_json(text: str) -> GenerationResult:
    data = json.loads(text)
    if data.get("logprobs") is not None:
        data["logprobs"] = tuple(data["logprobs"])
    if data.get("top_logprobs") is not None:
        data["top_logprobs"] = tuple(tuple((t, lp) for t, lp in step) for step in data["top_logprobs"])
    if data.get("top1") is not None:
        data["top1"] = tuple(data["top1"])
    return GenerationResult(**data)


def answers(result: GenerationResult, request: GenerationRequest) -> bool:
    """Whether a stored ``result`` answers ``request``: always, unless the request asks for the top-1
    probabilities and the stored answer was made without them (then it is sent again, and replaced)."""
    return not request.top1 or result.top1 is not None


def cacheable(result: GenerationResult) -> bool:
    """Stored results: successful and non-empty. Errors and empty completions are asked again next time."""
    return result.ok and bool(result.text and result.text.strip())


@dataclass
class CachedBackend(Backend):
    """Wrap any backend so that each completed request is stored, and never sent again.

    ``ds.map(EvolInstruct(backend=CachedBackend(TGIBackend(urls=...), "run.sqlite")).acall, ...)``:
    kill the job at any point and run it again, and only the requests without a stored
    answer reach the server. Works the same around the local ``TransformersBackend``.

    Args:
        backend: the backend that does the work.
        path: the SQLite file (created if missing; shared safely by several processes).
    """

    backend: Backend
    path: str

    kind = "cached"

    def __post_init__(self) -> None:
        if not isinstance(self.backend, Backend):
            raise CacheError(f"CachedBackend wraps a hfevol Backend, got {type(self.backend).__name__}")
        self.path = str(self.path)
        _fingerprint_without_location()

    @property
    def cache(self) -> RequestCache:
        if getattr(self, "_cache", None) is None:
            self._cache = RequestCache(self.path)
            self._hits = 0
        return self._cache

    @property
    def hits(self) -> int:
        """Requests answered from the cache in this process."""
        _ = self.cache  # opens the cache first, which starts the count
        return self._hits

    def _identity(self) -> dict[str, Any]:
        if getattr(self, "_identity_value", None) is None:
            self._identity_value = self.backend.cache_identity()
        return self._identity_value

    def describe(self) -> dict[str, Any]:
        return {**self.backend.describe(), "request_cache": self.path}

    def cache_identity(self) -> dict[str, Any]:
        return self.backend.cache_identity()

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        keys = [request_key(self._identity(), r) for r in requests]
        found = self.cache.get_many(keys)
        missing = [i for i, k in enumerate(keys) if k not in found or not answers(found[k], requests[i])]
        self._hits += len(requests) - len(missing)
        fresh = self.backend.generate([requests[i] for i in missing]) if missing else []
        for i, result in zip(missing, fresh, strict=True):
            if cacheable(result):
                self.cache.put(keys[i], requests[i], result)
            found[keys[i]] = result
        return [found[k] for k in keys]

    async def agenerate(self, request: GenerationRequest) -> GenerationResult:
        key = request_key(self._identity(), request)
        hit = self.cache.get(key)
        if hit is not None and answers(hit, request):
            self._hits += 1
            return hit
        result = await self.backend.agenerate(request)
        if cacheable(result):
            self.cache.put(key, request, result)
        return result


def _fingerprint_without_location() -> None:
    """Leave the cache file's location out of ``datasets`` fingerprints.

    Where answers are stored does not change what a transform computes: the same command
    with another ``--out`` (and so another request cache) must still hit the ``datasets``
    cache. Only the fingerprint hasher (``datasets``' own pickler) is told; the copies that
    ``num_proc`` workers receive keep the path.
    """
    try:
        from datasets.utils._dill import Pickler, pklregister
    except ImportError:  # a datasets without this hook: the path stays in the fingerprint
        return
    if CachedBackend in Pickler.dispatch:
        return

    @pklregister(CachedBackend)
    def _save(pickler: Any, obj: CachedBackend) -> None:
        pickler.save_reduce(_fingerprint_view, (obj.backend,), obj=obj)


def _fingerprint_view(backend: Backend) -> tuple[str, Backend]:
    return ("CachedBackend", backend)
