"""The contract every row transform keeps (hfevol.transform.RowTransform): declared columns checked
before any row runs, one map() that runs acall against an endpoint, pickling as settings only."""

from __future__ import annotations

import dataclasses
import importlib
import pickle
import threading

import pytest
from _helpers import ScriptedBackend
from _servers import FAST, rows

from hfevol import prompts
from hfevol.autoif.constraints import ConstraintWriter
from hfevol.autoif.verifiers import VerifierWriter
from hfevol.autoif.verify import AutoIFJudge
from hfevol.backends import SamplingParams
from hfevol.backends.tgi import TGIBackend
from hfevol.cache import CachedBackend
from hfevol.errors import MissingColumnError
from hfevol.evolution import AutoEvolInstruct, Elimination, EvolInstruct
from hfevol.respond import Respond
from hfevol.scoring import Score
from hfevol.scoring.endpoint import EndpointScore
from hfevol.transform import RowTransform

UNREACHABLE = "http://127.0.0.1:9"
"""Nothing is ever sent here: each test below fails if a transform talks to its model."""


def _backend() -> ScriptedBackend:
    backend = ScriptedBackend()
    _ = backend.calls  # runtime state (an unpicklable lock) exists, as in a real session
    return backend


FACTORIES = {
    "EvolInstruct": lambda: EvolInstruct(backend=_backend(), seed=4),
    "AutoEvolInstruct": lambda: AutoEvolInstruct(backend=_backend()),
    "Respond": lambda: Respond(backend=_backend(), output_column="answer"),
    "ConstraintWriter": lambda: ConstraintWriter(backend=_backend(), seeds=("Answer in French.",), count=3),
    "VerifierWriter": lambda: VerifierWriter(backend=_backend()),
    "AutoIFJudge": lambda: AutoIFJudge(backend=_backend()),
    "Elimination": lambda: Elimination(min_words=2),
    "Score": lambda: Score(model="embedded", batch_size=3, device="cpu"),
    "EndpointScore": lambda: EndpointScore(endpoint=UNREACHABLE, max_length=64),
}


def _concrete_subclasses(cls: type) -> set[str]:
    found = set()
    for sub in cls.__subclasses__():
        if not getattr(sub, "__abstractmethods__", None):
            found.add(sub.__name__)
        found |= _concrete_subclasses(sub)
    return found


def test_every_row_transform_is_covered_by_these_tests():
    for module in ("hfevol.evolution", "hfevol.respond", "hfevol.autoif", "hfevol.scoring", "hfevol.scoring.endpoint", "hfevol.car"):
        importlib.import_module(module)
    assert _concrete_subclasses(RowTransform) == set(FACTORIES)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_a_transform_pickles_as_its_settings_plus_prompt_hashes(name):
    transform = FACTORIES[name]()
    transform._runtime = threading.Lock()  # runtime state: must not be pickled (a lock cannot be)
    state = transform.__getstate__()
    settings = {f.name for f in dataclasses.fields(transform)}
    templates = transform.prompt_templates()
    # an option added later may stay out of the state while it is off, so that older fingerprints hold
    unset = {f.name for f in dataclasses.fields(transform) if f.name not in state and getattr(transform, f.name) == f.default}
    assert unset <= {"record_top1", "top1_k"}
    assert set(state) == (settings - unset) | ({"_prompt_versions"} if templates else set())
    if templates:
        # each template's content hash, by its full name; recomputed here from the files
        assert state["_prompt_versions"] == {t: prompts.version(t) for t in templates}
    copy = pickle.loads(pickle.dumps(transform))
    assert type(copy) is type(transform) and copy == transform
    assert not hasattr(copy, "_runtime") and not hasattr(copy, "_prompt_versions")
    backend = getattr(copy, "backend", None)
    if isinstance(backend, ScriptedBackend):
        assert getattr(backend, "_calls", None) is None, "the backend's runtime state was pickled"


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_a_missing_input_column_fails_before_any_row_runs(name, monkeypatch):
    from datasets import Dataset

    transform = FACTORIES[name]()
    required = transform.input_columns()
    assert required and all(isinstance(c, str) for c in required)
    columns = {c: ["x", "y"] for c in required[1:]}
    columns["unrelated"] = ["a", "b"]
    ds = Dataset.from_dict(columns)

    def no_map(*args, **kwargs):
        raise AssertionError("Dataset.map ran although a required column is missing")

    monkeypatch.setattr(Dataset, "map", no_map)
    with pytest.raises(MissingColumnError, match=repr(required[0])):
        transform.map(ds)
    backend = getattr(transform, "backend", None)
    if isinstance(backend, ScriptedBackend):
        assert backend.calls == []
    if isinstance(transform, Score):
        assert getattr(transform, "_scorer", None) is None, "the model was loaded before the columns were checked"


def test_map_runs_acall_against_an_endpoint_and_call_against_a_local_model(monkeypatch, tmp_path):
    from datasets import Dataset

    from hfevol.testing import TGITestServer

    ds = Dataset.from_list(rows(6))
    ran: list[str] = []
    plain_call, plain_acall = EvolInstruct.__call__, EvolInstruct.acall

    def call(self, batch, indices=None):
        ran.append("call")
        return plain_call(self, batch, indices)

    async def acall(self, batch, indices=None):
        ran.append("acall")
        return await plain_acall(self, batch, indices)

    monkeypatch.setattr(EvolInstruct, "__call__", call)
    monkeypatch.setattr(EvolInstruct, "acall", acall)
    short = SamplingParams(max_new_tokens=16)

    local = EvolInstruct(backend=ScriptedBackend(), sampling=short).map(ds, batch_size=3)
    assert ran == ["call", "call"] and local["evol_status"] == ["ok"] * 6

    with TGITestServer() as srv:
        for backend in (TGIBackend(urls=srv.url, retry=FAST), CachedBackend(TGIBackend(urls=srv.url, retry=FAST), str(tmp_path / "cache.sqlite"))):
            ran.clear()
            out = EvolInstruct(backend=backend, sampling=short).map(ds, batch_size=3)
            assert ran == ["acall", "acall"], type(backend).__name__
            assert out["evol_status"] == ["ok"] * 6
            assert out["evolved_instruction"][4].endswith("Explain topic number 4 in two sentences.")


def test_map_fixes_the_output_types_and_keeps_the_other_columns():
    from datasets import Dataset, Value

    # every reason is None in the first batch: without declared types the column would be typed null
    ds = Dataset.from_list([{"instruction": f"Name {i} primes.", "extra": i} for i in range(4)] + [{"instruction": "", "extra": 4}])
    out = Respond(backend=ScriptedBackend()).map(ds, batch_size=2)
    assert out.features["output_reason"] == Value("string") and out.features["extra"] == Value("int64")
    assert out["output_status"] == ["ok"] * 4 + ["invalid_input"]
    assert out["output_reason"][4] == "column 'instruction': the value is empty"
