"""The SQLite request cache and CachedBackend: keys, what is stored, corrupt files, concurrent writers."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest
from _helpers import ScriptedBackend

from hfevol.backends import GenerationRequest, GenerationResult, SamplingParams
from hfevol.cache import CachedBackend, RequestCache, request_key
from hfevol.errors import CacheError

IDENTITY = {"backend": "tgi", "model": "m", "revision": "abc"}


def _req(text: str = "hello", seed: int | None = 1, **params) -> GenerationRequest:
    return GenerationRequest.chat(text, seed=seed, params=SamplingParams(**params) if params else SamplingParams())


def test_key_covers_model_messages_sampling_and_seed():
    base = request_key(IDENTITY, _req())
    assert base == request_key(dict(IDENTITY), _req())  # stable across calls and dict copies
    assert len(base) == 64
    different = [
        request_key({**IDENTITY, "revision": "def"}, _req()),
        request_key(IDENTITY, _req("hello!")),
        request_key(IDENTITY, _req(seed=2)),
        request_key(IDENTITY, _req(temperature=0.2)),
        request_key(IDENTITY, _req(max_new_tokens=10)),
        request_key(IDENTITY, GenerationRequest.chat("hello", system="be brief", seed=1)),
    ]
    assert base not in different and len(set(different)) == len(different)


def test_results_round_trip_with_log_probs(tmp_path):
    cache = RequestCache(tmp_path / "c.sqlite")
    result = GenerationResult(
        text="hi",
        finish_reason="length",
        prompt_tokens=3,
        completion_tokens=2,
        logprobs=(-0.1, -2.0),
        top_logprobs=((("hi", -0.1), ("yo", -3.0)), (("!", -2.0),)),
    )
    cache.put("k", _req(), result)
    assert RequestCache(tmp_path / "c.sqlite").get("k") == result  # a second connection reads the committed row
    assert cache.get("missing") is None
    assert cache.requests() == [{"messages": [["user", "hello"]], "params": SamplingParams().to_dict(), "seed": 1}]


def test_a_file_that_is_not_a_cache_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("these are my notes, not a database " * 100)
    with pytest.raises(CacheError, match="cannot use") as info:
        RequestCache(bad).get("k")
    assert "another cache path" in str(info.value)


def test_a_cache_from_another_schema_is_refused(tmp_path):
    path = tmp_path / "c.sqlite"
    RequestCache(path).get("k")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema'")
    with pytest.raises(CacheError, match="version"):
        RequestCache(path).get("k")


def test_cached_backend_sends_each_request_once(tmp_path):
    inner = ScriptedBackend()
    backend = CachedBackend(inner, str(tmp_path / "c.sqlite"))
    requests = [_req(f"question {i}", seed=i) for i in range(5)]
    first = backend.generate(requests)
    assert len(inner.calls) == 5
    again = CachedBackend(ScriptedBackend(), str(tmp_path / "c.sqlite"))  # a new process would look like this
    second = again.generate(requests + [_req("new", seed=9)])
    assert second[:5] == first
    assert again.backend.calls == [_req("new", seed=9)] and again.hits == 5


def test_failed_and_empty_results_are_not_stored(tmp_path):
    class Flaky(ScriptedBackend):
        def generate(self, requests):
            self.calls.extend(requests)
            answers = {
                "a": GenerationResult.failure("boom"),
                "b": GenerationResult(text="  ", finish_reason="stop"),
                "c": GenerationResult(text="fine", finish_reason="stop"),
            }
            return [answers[r.messages[-1][1]] for r in requests]

    backend = CachedBackend(Flaky(), str(tmp_path / "c.sqlite"))
    requests = [_req("a"), _req("b"), _req("c")]
    backend.generate(requests)
    assert len(backend.cache) == 1
    backend.generate(requests)
    assert len(backend.backend.calls) == 3 + 2  # only the failed and the empty one go out again


def test_async_path_uses_the_cache(tmp_path):
    import asyncio

    inner = ScriptedBackend()
    backend = CachedBackend(inner, str(tmp_path / "c.sqlite"))
    r1 = asyncio.run(backend.agenerate(_req()))
    r2 = asyncio.run(backend.agenerate(_req()))
    assert r1 == r2 and len(inner.calls) == 1


def test_pickles_as_configuration(tmp_path):
    import pickle

    backend = CachedBackend(ScriptedBackend(), str(tmp_path / "c.sqlite"))
    backend.generate([_req()])
    copy = pickle.loads(pickle.dumps(backend))
    assert copy.path == backend.path and "_cache" not in copy.__dict__
    assert copy.generate([_req()])[0].text.startswith("Evolved")


def test_the_cache_location_is_not_in_the_fingerprint_but_the_backend_is(tmp_path):
    import pickle

    from datasets.fingerprint import Hasher

    here = CachedBackend(ScriptedBackend(), str(tmp_path / "a.sqlite"))
    there = CachedBackend(ScriptedBackend(), str(tmp_path / "b.sqlite"))
    other_model = CachedBackend(ScriptedBackend(reply="Other: {last_line}"), str(tmp_path / "a.sqlite"))
    assert Hasher.hash(here) == Hasher.hash(there)
    assert Hasher.hash(here) != Hasher.hash(other_model)
    assert Hasher.hash(here) != Hasher.hash(here.backend)
    # a plain pickle (what num_proc workers get) still carries the path
    assert pickle.loads(pickle.dumps(there)).path == there.path


def _writer(path: str, worker: int, n: int) -> None:
    cache = RequestCache(path)
    for i in range(n):
        cache.put(f"{worker}-{i}", _req(f"w{worker} r{i}"), GenerationResult(text=f"{worker}:{i}", finish_reason="stop"))
        cache.get(f"{(worker + 1) % 4}-{i}")  # interleave reads with the other writers' commits


def test_concurrent_writer_processes_lose_nothing(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    RequestCache(path).get("init")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 150)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    cache = RequestCache(path)
    assert len(cache) == 600
    found = cache.get_many([f"{w}-{i}" for w in range(4) for i in range(150)])
    assert all(found[f"{w}-{i}"].text == f"{w}:{i}" for w in range(4) for i in range(150))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
