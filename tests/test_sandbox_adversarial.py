"""Hostile verifiers are contained, and the run goes on (an honest verifier's verdict is unchanged).

The full level (``bwrap+seccomp``) is required: the project installs bubblewrap (``make venv``)
and CI does too. The attacks that seccomp alone must stop, even as root (our CI runs as root and
root ignores RLIMIT_NPROC), also run at a forced ``seccomp`` level, without namespaces.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _sandbox_helpers import assert_honest, forced_level

from hfevol.sandbox import Sandbox, pool

FULL = "bwrap+seccomp"
SECCOMP_STOPS_IT = [FULL, "seccomp"]


@pytest.fixture
def sandbox() -> Sandbox:
    """The level this machine really has, which must be the full one."""
    box = Sandbox(per_input_timeout=0.3, function_timeout=1.0, require=FULL)
    assert box.level == FULL
    return box


@pytest.fixture(params=SECCOMP_STOPS_IT)
def sandbox_s(request: pytest.FixtureRequest):
    """The same, at both levels where seccomp is loaded."""
    with forced_level(request.param):
        box = Sandbox(per_input_timeout=0.3, function_timeout=1.0, require=request.param)
        assert box.level == request.param
        yield box


def test_endless_loop_times_out_per_input_and_stops_after_two(sandbox: Sandbox) -> None:
    run = sandbox.run("def evaluate(r):\n    while True:\n        pass\n", ["a", "b", "c", "d"])
    # "ok", not killed: four timers of 0.3 s would overrun the 1 s deadline; after two the rest are skipped.
    assert run.status == "ok"
    assert run.results == [None] * 4 and run.errors == ["timeout"] * 4
    assert_honest(sandbox)


def test_loop_that_swallows_the_timer_is_killed_at_the_function_deadline(sandbox: Sandbox) -> None:
    source = "def evaluate(r):\n    while True:\n        try:\n            while True:\n                pass\n        except BaseException:\n            pass\n"
    started = time.monotonic()
    run = sandbox.run(source, ["a", "b"])
    elapsed = time.monotonic() - started
    assert run.status == "killed_timeout" and run.results == [None, None]
    assert 0.9 < elapsed < 3.0
    assert_honest(sandbox)


def test_long_c_call_is_killed(sandbox: Sandbox) -> None:
    started = time.monotonic()
    run = sandbox.run("def evaluate(r):\n    return sum(range(4 * 10**8)) > 0\n", ["a"])
    assert run.status == "killed_timeout" and run.results == [None]
    assert time.monotonic() - started < 3.0  # the sum alone takes several seconds
    assert_honest(sandbox)


def test_os_system_and_subprocess_run_nothing(sandbox_s: Sandbox, tmp_path: Path) -> None:
    marker_a, marker_b = tmp_path / "by-system", tmp_path / "by-subprocess"
    source = (
        "import os, subprocess\n"
        "def evaluate(r):\n"
        "    if r == 'system':\n"
        f"        return os.system('touch {marker_a}') == 0\n"
        f"    subprocess.run(['touch', '{marker_b}'], check=True)\n"
        "    return True\n"
    )
    run = sandbox_s.run(source, ["system", "subprocess"])
    assert run.status == "ok"
    assert run.results[0] is False and run.results[1] is None
    assert run.errors[1] in ("PermissionError", "FileNotFoundError")
    assert not marker_a.exists() and not marker_b.exists()
    assert_honest(sandbox_s)


def test_socket_to_a_host_listener_never_connects(sandbox_s: Sandbox) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    source = f"import socket\ndef evaluate(r):\n    socket.create_connection(('127.0.0.1', {port}), timeout=0.2).sendall(b'x')\n    return True\n"
    try:
        run = sandbox_s.run(source, ["a"])
        assert run.status == "ok" and run.results == [None]
        assert run.errors[0] in ("PermissionError", "ConnectionRefusedError", "OSError")
        with pytest.raises(BlockingIOError):  # nothing is waiting in the backlog
            listener.accept()
    finally:
        listener.close()
    assert_honest(sandbox_s)


def test_writing_outside_the_sandbox_writes_nothing(sandbox_s: Sandbox, tmp_path: Path) -> None:
    decoy = tmp_path / "decoy.txt"
    decoy.write_text("original\n")
    decoy.chmod(0o644)
    created = tmp_path / "created.txt"
    source = (
        "import os\n"
        "def evaluate(r):\n"
        "    if r == 'truncate':\n"
        f"        open('{decoy}', 'w').write('pwned')\n"
        "    elif r == 'append':\n"
        f"        open('{decoy}', 'a').write('pwned')\n"
        "    elif r == 'create':\n"
        f"        os.close(os.open('{created}', os.O_CREAT | os.O_RDONLY))\n"
        "    else:\n"
        f"        os.unlink('{decoy}')\n"
        "    return True\n"
    )
    run = sandbox_s.run(source, ["truncate", "append", "create", "unlink"])
    assert run.status == "ok" and run.results == [None] * 4
    assert all(error in ("PermissionError", "FileNotFoundError", "OSError") for error in run.errors)
    assert decoy.read_text() == "original\n"
    assert not created.exists()
    assert_honest(sandbox_s)


def test_hf_token_is_in_no_environment_the_verifier_can_read(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "hf_FAKEtokenForTheSandboxTest0123456789"
    monkeypatch.setenv("HF_TOKEN", token)
    sandbox.close()  # the next zygote starts from a host environment that holds the token
    # A process whose initial environment holds the token, as the host's would after `HF_TOKEN=... hfevol`.
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env={**os.environ})
    try:
        deadline = time.monotonic() + 10
        while token.encode() not in Path(f"/proc/{victim.pid}/environ").read_bytes():
            assert time.monotonic() < deadline, "the victim never showed its environment"
            time.sleep(0.01)
        source = (
            "import os\n"
            "def evaluate(r):\n"
            "    if r == 'env':\n"
            "        return any(r_ in v for v in os.environ.values() for r_ in ['hf_FAKE'])\n"
            "    for pid in os.listdir('/proc'):\n"
            "        try:\n"
            "            if b'hf_FAKE' in open(f'/proc/{pid}/environ', 'rb').read():\n"
            "                return True\n"
            "        except OSError:\n"
            "            pass\n"
            "    return False\n"
        )
        run = sandbox.run(source, ["env", "proc"])
        assert (run.status, run.results) == ("ok", [False, False])
    finally:
        victim.kill()
        victim.wait(timeout=10)
    assert_honest(sandbox)


def test_a_bounded_fork_loop_forks_nothing(sandbox_s: Sandbox) -> None:
    source = (
        "import os\n"
        "def evaluate(r):\n"
        "    forked = 0\n"
        "    for _ in range(16):\n"
        "        try:\n"
        "            pid = os.fork()\n"
        "        except OSError:\n"
        "            continue\n"
        "        if pid == 0:\n"
        "            os._exit(0)\n"
        "        forked += 1\n"
        "    return forked == 0\n"
    )
    run = sandbox_s.run(source, ["a"])
    assert (run.status, run.results) == ("ok", [True])
    assert_honest(sandbox_s)


def test_a_10_gb_allocation_fails_with_memory_error(sandbox_s: Sandbox) -> None:
    run = sandbox_s.run("def evaluate(r):\n    return len(bytearray(10 * 2**30)) > 0\n", ["a", "b"])
    assert (run.status, run.results, run.errors) == ("ok", [None, None], ["MemoryError", "MemoryError"])
    assert_honest(sandbox_s)


def test_sys_exit_fails_one_input_and_os_exit_one_function(sandbox: Sandbox) -> None:
    box_pool = pool.get_pool(sandbox.level, sandbox.workers)
    failures = box_pool.zygote_failures
    run = sandbox.run("import sys\ndef evaluate(r):\n    if r == 'x':\n        sys.exit(0)\n    return True\n", ["x", "y"])
    assert (run.status, run.results, run.errors) == ("ok", [None, True], ["SystemExit", None])
    run = sandbox.run("import os\ndef evaluate(r):\n    os._exit(3)\n", ["a", "b"])
    assert (run.status, run.results) == ("crashed", [None, None])
    assert box_pool.zygote_failures == failures  # only the child died; the zygote served on
    assert_honest(sandbox)


def test_a_monkeypatch_of_re_does_not_reach_the_next_verifier(sandbox: Sandbox) -> None:
    poison = "import re, builtins\nre.search = lambda *a, **k: None\nbuiltins.len = lambda x: 0\ndef evaluate(r):\n    return re.search('x', r) is None\n"
    honest = "import re\ndef evaluate(r):\n    return re.search('x', r) is not None and len(r) == 3\n"
    first = sandbox.run(poison, ["xyz"])
    assert first.results == [True]  # the patch did take effect inside its own interpreter
    second = sandbox.run(honest, ["xyz", "abc"])
    assert (second.status, second.results) == ("ok", [True, False])
    runs = sandbox.run_many([(poison, ["xyz"]), (honest, ["xyz"])] * 4)
    assert [run.results for run in runs] == [[True], [True]] * 4
    assert_honest(sandbox)


def test_kill_and_output_on_the_protocol_fds_change_nothing(sandbox_s: Sandbox) -> None:
    source = (
        "import os, signal\n"
        "def evaluate(r):\n"
        '    print(\'{"id": 1, "status": "ok"}\')\n'
        "    for fd in range(3):\n"
        "        try:\n"
        "            os.write(fd, b'{\"forged\": true}\\n')\n"
        "        except OSError:\n"
        "            pass\n"
        "    try:\n"
        "        os.kill(os.getppid(), signal.SIGKILL)\n"
        "    except OSError:\n"
        "        pass\n"
        "    return len(r) == 1\n"
    )
    box_pool = pool.get_pool(sandbox_s.level, sandbox_s.workers)
    failures = box_pool.zygote_failures
    run = sandbox_s.run(source, ["a", "bb"])
    assert (run.status, run.results) == ("ok", [True, False])
    assert box_pool.zygote_failures == failures  # the zygote survived: seccomp denies kill
    assert_honest(sandbox_s)
