"""The verifier sandbox's contract: verdicts, statuses, levels and their refusal, pool life cycle."""

from __future__ import annotations

import logging
import os
import pickle
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from _sandbox_helpers import HONEST, HONEST_INPUTS, HONEST_VERDICT, assert_honest, forced_level

from hfevol.errors import ConfigError, SandboxUnavailableError
from hfevol.sandbox import FunctionRun, Sandbox, pool, probe
from hfevol.sandbox import box as box_module


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(per_input_timeout=0.5, function_timeout=2.0)


def test_verdicts_are_real_booleans_only(sandbox: Sandbox) -> None:
    source = (
        "class Truthy:\n"
        "    def __bool__(self):\n"
        "        return True\n"
        "def evaluate(r):\n"
        "    return {'t': True, 'f': False, '1': 1, 's': 'True', 'n': None, 'o': Truthy()}[r]\n"
    )
    run = sandbox.run(source, ["t", "f", "1", "s", "n", "o"])
    assert isinstance(run, FunctionRun) and run.status == "ok"
    assert run.results == [True, False, None, None, None, None]
    assert run.errors == [None, None, "invalid_return:int", "invalid_return:str", "invalid_return:NoneType",
                          "invalid_return:object"]  # fmt: skip
    assert run.seconds > 0


def test_exceptions_are_recorded_by_builtin_type_name_never_by_message(sandbox: Sandbox) -> None:
    secret = "hf_SECRETvalue42"
    source = (
        f"class {secret}(KeyError):\n"
        "    pass\n"
        "def evaluate(r):\n"
        f"    if r == 'value':\n        raise ValueError('{secret}')\n"
        f"    if r == 'custom':\n        raise {secret}('{secret}')\n"
        f"    return type('{secret}', (), {{}})()\n"
    )
    run = sandbox.run(source, ["value", "custom", "object"])
    assert run.errors == ["ValueError", "KeyError", "invalid_return:object"]
    assert secret not in repr(run)


def test_compile_error_missing_entry_other_entry_and_empty_inputs(sandbox: Sandbox) -> None:
    run = sandbox.run("def evaluate(r):\n    return (\n", ["a", "b"])
    assert (run.status, run.results, run.errors) == ("compile_error", [None, None], ["SyntaxError", "SyntaxError"])
    run = sandbox.run("1 / 0\ndef evaluate(r):\n    return True\n", ["a"])
    assert (run.status, run.errors) == ("compile_error", ["ZeroDivisionError"])
    run = sandbox.run("def check(r):\n    return True\n", ["a"])
    assert (run.status, run.results, run.errors) == ("missing_entry", [None], ["missing_entry"])
    assert sandbox.run("def check(r):\n    return r == 'a'\n", ["a", "b"], entry="check").results == [True, False]
    assert sandbox.run(HONEST, []).results == []
    with pytest.raises(TypeError, match="string"):
        sandbox.run(HONEST, [1])


def test_a_helper_at_module_level_is_visible_to_evaluate(sandbox: Sandbox) -> None:
    # The reference's separate-locals exec fails this (autoif.md §2 item 4).
    source = "import string\ndef words(r):\n    return r.split()\ndef evaluate(r):\n    return len(words(r)) == 2 and r[0] in string.ascii_letters\n"
    assert sandbox.run(source, ["ab cd", "ab"]).results == [True, False]


def test_clean_environment_and_fixed_hash_seed(sandbox: Sandbox) -> None:
    oracle = subprocess.run(
        [sys.executable, "-c", "print(hash('abc'))"],
        env={"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    source = (
        "import os\n"
        "def evaluate(r):\n"
        "    if r == 'env':\n"
        "        return sorted(set(os.environ) - {'PWD'}) == ['LC_ALL', 'PATH', 'PYTHONHASHSEED']\n"  # bwrap sets PWD
        "    return str(hash('abc')) == r\n"
    )
    assert sandbox.run(source, ["env", oracle]).results == [True, True]


def test_run_many_keeps_the_order_of_the_jobs(sandbox: Sandbox) -> None:
    jobs = [(f"def evaluate(r):\n    return len(r) == {k}\n", ["x" * k, "x" * (k + 1)]) for k in range(10)]
    runs = sandbox.run_many(jobs)
    assert [run.results for run in runs] == [[True, False]] * 10
    assert sandbox.run_many([]) == []
    checks = sandbox.run_many([("def check(r):\n    return r == 'a'\n", ["a", "b"], "check")] * 3)
    assert [run.results for run in checks] == [[True, False]] * 3


def test_sandbox_pickles_as_its_settings_only(sandbox: Sandbox) -> None:
    assert_honest(sandbox)  # a pool exists now
    restored = pickle.loads(pickle.dumps(sandbox))
    assert restored.__dict__ == sandbox.__dict__
    assert set(sandbox.__getstate__()) == {"per_input_timeout", "function_timeout", "require", "workers", "max_timeouts"}
    assert_honest(restored)


def test_bad_settings_are_config_errors() -> None:
    for kwargs in ({"per_input_timeout": 0}, {"function_timeout": -1}, {"require": "docker"}, {"workers": 0},
                   {"per_input_timeout": float("nan")}, {"max_timeouts": 0}):  # fmt: skip
        with pytest.raises(ConfigError):
            Sandbox(**kwargs)


@pytest.mark.parametrize("level", ["bwrap+seccomp", "bwrap", "seccomp", "process"])
def test_each_forced_level_is_reported_and_really_used(level: str, tmp_path: Path) -> None:
    source = (
        "import os\n"
        "def evaluate(r):\n"
        "    if r == 'host-visible':\n"
        f"        return os.path.exists('{tmp_path}')\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        return False\n"
        "    if pid == 0:\n"
        "        os._exit(0)\n"
        "    os.waitpid(pid, 0)\n"
        "    return True\n"
    )
    with forced_level(level):
        sandbox = Sandbox(per_input_timeout=0.5)
        assert sandbox.level == level
        run = sandbox.run(source, ["host-visible", "fork"])
        layers = probe.level_layers(level)
        assert run.results == ["bwrap" not in layers, "seccomp" not in layers]
        assert run.level == level
        assert_honest(sandbox)


@pytest.mark.parametrize(
    ("level", "require", "refused"),
    [
        ("seccomp", "bwrap", True),
        ("seccomp", "bwrap+seccomp", True),
        ("seccomp", "seccomp", False),
        ("bwrap", "bwrap+seccomp", True),
        ("bwrap", "seccomp", True),
        ("bwrap", "bwrap", False),
        ("process", "seccomp", True),
        ("process", "process", False),
        ("bwrap+seccomp", "bwrap+seccomp", False),
    ],
)
def test_require_refuses_a_lower_level_with_a_hint(level: str, require: str, refused: bool) -> None:
    with forced_level(level):
        sandbox = Sandbox(require=require)
        if refused:
            with pytest.raises(SandboxUnavailableError, match=re.escape(f"needs '{require}' but only '{level}'")) as caught:
                sandbox.run(HONEST, HONEST_INPUTS)
            if "bwrap" in require and "bwrap" not in level:
                assert "apt-get install -y bubblewrap" in str(caught.value)
        else:
            assert sandbox.run(HONEST, HONEST_INPUTS).results == HONEST_VERDICT


def test_without_bubblewrap_the_level_warns_loudly(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(box_module, "_warned", set())
    monkeypatch.setattr(probe, "_cached", probe.Layers(False, True, "bwrap is not installed"))
    with caplog.at_level(logging.WARNING), pytest.warns(RuntimeWarning, match="without bubblewrap"):
        assert Sandbox().level == "seccomp"
    assert "apt-get install -y bubblewrap" in caplog.text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Sandbox().level == "seccomp"  # once per process, not per call


def test_a_function_that_kills_two_zygotes_is_a_sandbox_error() -> None:
    with forced_level("process"):  # no seccomp: the verifier can kill its parent, the zygote
        sandbox = Sandbox(per_input_timeout=0.5, workers=1)
        killer = "import os, signal\ndef evaluate(r):\n    os.kill(os.getppid(), signal.SIGKILL)\n"
        box_pool = pool.get_pool("process", 1)
        before = box_pool.zygote_failures
        run = sandbox.run(killer, ["a", "b"])
        assert (run.status, run.results, run.errors) == ("sandbox_error", [None, None], ["sandbox_error"] * 2)
        assert box_pool.zygote_failures == before + 2
        assert_honest(sandbox)


def test_three_failed_starts_raise_sandbox_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    with forced_level("process"):
        sandbox = Sandbox(workers=1)
        sandbox.close()
        monkeypatch.setattr(pool, "zygote_command", lambda level: ["/bin/false"])
        started = time.monotonic()
        with pytest.raises(SandboxUnavailableError, match="failed to start 3 times"):
            sandbox.run(HONEST, HONEST_INPUTS)
        assert time.monotonic() - started < 10
        monkeypatch.undo()
        with forced_level("process"):
            assert_honest(sandbox)  # a working command starts again


def test_a_forked_process_starts_its_own_pool(sandbox: Sandbox) -> None:
    assert_honest(sandbox)  # the parent's pool is running
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            mine = sandbox.run(HONEST, HONEST_INPUTS).results == HONEST_VERDICT
            fresh = all(key[0] == os.getpid() for key in pool._registry)
            os.write(write_fd, b"ok" if mine and fresh else b"bad")
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        assert time.monotonic() < deadline, "the forked process did not finish"
        time.sleep(0.02)
    assert os.read(read_fd, 16) == b"ok" and os.waitstatus_to_exitcode(status) == 0
    os.close(read_fd)
    assert_honest(sandbox)  # the child's exit did not touch the parent's zygotes


def test_close_stops_the_zygotes_and_the_next_run_restarts_them(sandbox: Sandbox) -> None:
    assert_honest(sandbox)
    zygotes = [slot[0] for slot in pool.get_pool(sandbox.level, sandbox.workers)._all if slot[0] is not None]
    processes = [z.process for z in zygotes]
    assert processes
    with sandbox:
        pass  # __exit__ closes
    assert all(p.poll() is not None for p in processes)
    assert_honest(sandbox)
