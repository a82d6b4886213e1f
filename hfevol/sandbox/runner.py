"""The trusted side of the verifier sandbox: a fork-server ("zygote") and the child it forks.

Standard library only, run as ``python -S -s -B runner.py MODE CONFIG`` (inside bubblewrap when
available). Modes:

- ``--zygote``: read one JSON request per line from fd 0, answer one JSON reply per line on
  fd 1. For each request fork a fresh child that runs ONE function on all its inputs, wait for
  its reply with a deadline, SIGKILL its process group at the deadline.
- ``--once``: run one request read from fd 0 in this very process (the fresh-process baseline
  of the benchmark).
- ``--probe``: print ``{"seccomp": bool}``: whether a forked child can load the filter and is
  then refused a socket and a fork.

The child, before it reads the untrusted source: leaves the zygote's session, closes every fd
but its reply pipe and /dev/null, sets rlimits, loads the seccomp filter (when asked). Only real
booleans count as results; exceptions and invalid returns are reported by the name of their
nearest *builtin* type, never by a message or a verifier-chosen class name.
"""

from __future__ import annotations

import builtins
import json
import os
import resource
import select
import signal
import sys
import time

# Modules verifiers commonly use, imported once in the zygote so that each child has them.
# Kept on one line, unsorted: sorting would split it, and `ruff --fix` would then drop the "unused" ones.
# isort: off
import collections, functools, itertools, math, re, string, unicodedata  # noqa: E401,F401
# isort: on

AS_LIMIT = 512 * 1024 * 1024
NOFILE_LIMIT = 32
NPROC_LIMIT = 8  # ignored for root; seccomp is what stops forks there
CHILD_REPLY_CAP = 1 << 20

_write = os.write
_dumps = json.dumps


class _InputTimeout(BaseException):
    """Raised by the per-input timer; a BaseException so that ``except Exception`` does not eat it."""


def _by_depth(types: list[type]) -> list[type]:
    return sorted(types, key=lambda t: len(t.__mro__), reverse=True)


_EXCEPTIONS = _by_depth([v for v in vars(builtins).values() if isinstance(v, type) and issubclass(v, BaseException)])
_VALUES = _by_depth(
    [v for v in vars(builtins).values() if isinstance(v, type) and not issubclass(v, BaseException)] + [type(None), type(len), type(lambda: 0), type(iter(()))]
)
ALLOWED_ERRORS = frozenset(["timeout"] + [t.__name__ for t in _EXCEPTIONS] + ["invalid_return:" + t.__name__ for t in _VALUES])


def _builtin_name(kind: type, table: list[type]) -> str:
    """The name of the most specific builtin type ``kind`` derives from (no user code runs)."""
    for candidate in table:
        if issubclass(kind, candidate):
            return candidate.__name__
    return "object"


def _on_alarm(signum, frame):  # noqa: ANN001
    raise _InputTimeout()


def _limit(which: int, value: int) -> None:
    try:
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError):
        pass


def _confine(cpu_seconds: int, seccomp_filter) -> None:  # noqa: ANN001
    """Rlimits and seccomp for the calling process, in this order (setrlimit is denied afterwards)."""
    _limit(resource.RLIMIT_AS, AS_LIMIT)
    _limit(resource.RLIMIT_CPU, cpu_seconds)
    _limit(resource.RLIMIT_NOFILE, NOFILE_LIMIT)
    _limit(resource.RLIMIT_FSIZE, 0)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NPROC, NPROC_LIMIT)
    if seccomp_filter is not None and seccomp_filter.load() != 0:
        raise OSError("seccomp_load failed")


def evaluate_all(request: dict) -> dict:
    """Run the request's function on each input in this process. Untrusted code runs here."""
    inputs = request["inputs"]
    n = len(inputs)
    per_input = float(request["per_input_timeout"])
    max_timeouts = int(request.get("max_timeouts", 2))
    signal.signal(signal.SIGALRM, _on_alarm)
    namespace = {"__name__": "__verifier__", "__builtins__": builtins}
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, per_input)
            exec(compile(request["source"], "<verifier>", "exec"), namespace)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _InputTimeout:
        return {"status": "compile_error", "errors": ["timeout"] * n}
    except BaseException as error:  # noqa: BLE001 - SystemExit at top level included
        return {"status": "compile_error", "errors": [_builtin_name(type(error), _EXCEPTIONS)] * n}
    function = namespace.get(request.get("entry", "evaluate"))
    if not callable(function):
        return {"status": "missing_entry", "errors": ["missing_entry"] * n}
    results: list = []
    errors: list = []
    timeouts = 0
    for text in inputs:
        if timeouts >= max_timeouts:
            results.append(None)
            errors.append("timeout")
            continue
        try:
            try:
                signal.setitimer(signal.ITIMER_REAL, per_input)
                value = function(text)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _InputTimeout:
            timeouts += 1
            results.append(None)
            errors.append("timeout")
            continue
        except BaseException as error:  # noqa: BLE001 - sys.exit, KeyboardInterrupt, ...
            results.append(None)
            errors.append(_builtin_name(type(error), _EXCEPTIONS))
            continue
        if value is True or value is False:
            results.append(value)
            errors.append(None)
        else:
            results.append(None)
            errors.append("invalid_return:" + _builtin_name(type(value), _VALUES))
    return {"status": "ok", "results": results, "errors": errors}


def _child(request: dict, reply_fd: int, seccomp_filter, deadline: float) -> None:  # noqa: ANN001
    """The forked child: confine itself, run the function, write one reply, exit. Never returns."""
    code = 0
    try:
        os.setsid()
        os.closerange(3, reply_fd)
        os.closerange(reply_fd + 1, 1 << 16)
        _confine(int(deadline) + 2, seccomp_filter)
        reply = evaluate_all(request)
        data = _dumps(reply).encode() + b"\n"
        while data:
            data = data[_write(reply_fd, data) :]
    except BaseException:  # noqa: BLE001
        code = 70
    os._exit(code)


def _read_child(fd: int, pid: int, deadline: float) -> tuple[bytes | None, str]:
    """The child's reply, or None with the reason ("killed_timeout", "crashed", "oversized")."""
    buffer = b""
    end = time.monotonic() + deadline
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return None, "killed_timeout"
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return None, "crashed"
        buffer += chunk
        if len(buffer) > CHILD_REPLY_CAP:
            return None, "oversized"
        if b"\n" in buffer:
            return buffer.split(b"\n", 1)[0], "ok"


def _validate(raw: bytes, n: int) -> dict | None:
    """A child's reply in the exact shape expected, or None (a forged or broken reply)."""
    try:
        reply = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(reply, dict):
        return None
    status = reply.get("status")
    errors = reply.get("errors")
    results = reply.get("results", [None] * n)
    if status not in ("ok", "compile_error", "missing_entry") or not isinstance(errors, list):
        return None
    if not isinstance(results, list) or len(results) != n or len(errors) != n:
        return None
    for value, error in zip(results, errors):
        if value is None:
            if error not in ALLOWED_ERRORS and error != "missing_entry":
                return None
        elif not (value is True or value is False) or error is not None:
            return None
    return {"status": status, "results": results, "errors": errors}


def run_in_child(request: dict, seccomp_filter) -> dict:  # noqa: ANN001
    """Fork one child for the request and turn what it does into a reply (the zygote's core)."""
    n = len(request["inputs"])
    deadline = float(request["deadline"])
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(request, write_fd, seccomp_filter, deadline)
    os.close(write_fd)
    try:
        raw, why = _read_child(read_fd, pid, deadline)
    finally:
        os.close(read_fd)
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        os.waitpid(pid, 0)
    reply = _validate(raw, n) if raw is not None else None
    if reply is None:
        status = why if raw is None else "crashed"
        status = "crashed" if status == "oversized" else status
        error = "timeout" if status == "killed_timeout" else "crashed"
        reply = {"status": status, "results": [None] * n, "errors": [error] * n}
    return reply


def _serve(config: dict) -> None:
    """The zygote loop: one request line in, one reply line out, until EOF."""
    seccomp_filter = None
    if config.get("seccomp"):
        import seccomp  # the file beside this one

        seccomp_filter = seccomp.build()
    proto_in, proto_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    _die_with_parent()
    reader = os.fdopen(proto_in, "rb")
    _send(proto_out, {"ready": True, "seccomp": seccomp_filter is not None, "pid": os.getpid()})
    for line in reader:
        request = json.loads(line)
        reply = run_in_child(request, seccomp_filter)
        reply["id"] = request["id"]
        _send(proto_out, reply)


def _send(fd: int, message: dict) -> None:
    data = json.dumps(message).encode() + b"\n"
    while data:
        data = data[os.write(fd, data) :]


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG, so that the zygote does not outlive the host thread that started it."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort; EOF on fd 0 also ends the zygote
        pass


def _once(config: dict) -> None:
    request = json.loads(sys.stdin.readline())
    seccomp_filter = None
    if config.get("seccomp"):
        import seccomp

        seccomp_filter = seccomp.build()
    out = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    _confine(int(float(request["deadline"])) + 2, seccomp_filter)
    reply = evaluate_all(request)
    reply.setdefault("results", [None] * len(request["inputs"]))
    reply["id"] = request["id"]
    _send(out, reply)


def _probe() -> None:
    """Whether a child that loaded the filter is refused a socket and a fork."""
    try:
        import seccomp

        seccomp_filter = seccomp.build()
    except Exception as error:  # noqa: BLE001
        print(json.dumps({"seccomp": False, "why": type(error).__name__ + ": " + str(error)[:200]}))
        return
    source = (
        "import os, socket\n"
        "def evaluate(x):\n"
        "    try:\n"
        "        socket.socket()\n"
        "        return False\n"
        "    except PermissionError:\n"
        "        pass\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except PermissionError:\n"
        "        return True\n"
        "    if pid == 0:\n"
        "        os._exit(0)\n"
        "    return False\n"
    )
    request = {"source": source, "inputs": [""], "per_input_timeout": 5, "deadline": 10}
    reply = run_in_child(request, seccomp_filter)
    print(json.dumps({"seccomp": reply.get("results") == [True], "why": reply["status"]}))


def main(argv: list[str]) -> None:
    mode = argv[1] if len(argv) > 1 else ""
    config = json.loads(argv[2]) if len(argv) > 2 else {}
    if mode == "--zygote":
        _serve(config)
    elif mode == "--once":
        _once(config)
    elif mode == "--probe":
        _probe()
    else:
        sys.exit("usage: runner.py --zygote|--once|--probe [CONFIG]")


if __name__ == "__main__":
    main(sys.argv)
