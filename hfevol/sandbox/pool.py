"""The host side of the verifier sandbox: zygote processes, their pool, and the per-process registry.

A zygote is ``runner.py --zygote`` (inside bubblewrap when the level says so), spoken to over
its stdin/stdout pipes, one JSON line each way per function. The host gives every call a
deadline; a zygote that misses it, dies, or breaks the protocol (oversized, malformed or
unasked-for reply) is killed with its process group and replaced, and the function is retried
once on a fresh zygote before it is reported as ``sandbox_error``. Three failed starts in a row
raise :class:`~hfevol.errors.SandboxUnavailableError`.

Pools live in a module registry keyed by process id, never inside a pickled or fingerprinted
object: after ``fork`` (``datasets.map(num_proc=...)``) a child starts its own zygotes.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import IO, Any

from hfevol.errors import SandboxUnavailableError
from hfevol.sandbox import probe

log = logging.getLogger(__name__)

REPLY_CAP = 1 << 20  # bytes; a bigger reply is a protocol violation
START_TIMEOUT = 20.0
MAX_FAILED_STARTS = 3
STATUSES = ("ok", "compile_error", "missing_entry", "killed_timeout", "crashed")


class ZygoteFailure(Exception):
    """A zygote died, hung, or broke the protocol (the host kills and replaces it)."""


class _Spawner:
    """One long-lived thread that starts every zygote.

    ``bwrap --die-with-parent`` ties the sandbox to the *thread* that started it; a worker
    thread of ``run_many`` may end at any time, this one lives as long as the process.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, function: Callable[[], Any]) -> Any:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="hfevol-sandbox-spawner", daemon=True)
                self._thread.start()
        future: Future = Future()
        self._jobs.put((function, future))
        return future.result(timeout=START_TIMEOUT)

    def _loop(self) -> None:
        while True:
            function, future = self._jobs.get()
            try:
                future.set_result(function())
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                future.set_exception(error)


class Zygote:
    """One fork-server process and its two pipes."""

    def __init__(self, level: str) -> None:
        self.level = level
        self.process: subprocess.Popen | None = None
        self._buffer = b""
        self._workdir: str | None = None
        self._stderr: IO[bytes] | None = None

    def start(self, spawner: _Spawner) -> None:
        """Start the process and wait for its ``ready`` line (raises :class:`ZygoteFailure`)."""
        command = zygote_command(self.level)
        self._workdir = tempfile.mkdtemp(prefix="hfevol-sandbox-")
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the zygote; kill() closes it
        try:
            self.process = spawner.call(
                lambda: subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=self._stderr,
                    env=dict(probe.CLEAN_ENV),
                    cwd=self._workdir,
                    start_new_session=True,
                    close_fds=True,
                )
            )
        except OSError as error:
            self.kill()
            raise ZygoteFailure(f"cannot start {command[0]}: {error}") from None
        os.set_blocking(self._pipe("stdin"), False)
        try:
            hello = self._read_line(time.monotonic() + START_TIMEOUT)
        except ZygoteFailure as failure:
            reason = f"{failure}; {self._stderr_tail()}"
            self.kill()
            raise ZygoteFailure(reason) from None
        want_seccomp = "seccomp" in probe.level_layers(self.level)
        if hello.get("ready") is not True or bool(hello.get("seccomp")) != want_seccomp:
            self.kill()
            raise ZygoteFailure(f"unexpected greeting from the sandbox: {str(hello)[:200]}")

    def call(self, request: dict, timeout: float) -> dict:
        """Send one request and return its reply, or raise :class:`ZygoteFailure`."""
        if self.process is None or self.process.poll() is not None:
            raise ZygoteFailure("the zygote is not running")
        if self._buffer or select.select([self._pipe("stdout")], [], [], 0)[0]:
            raise ZygoteFailure("the zygote sent a reply nobody asked for")
        end = time.monotonic() + timeout
        self._write(json.dumps(request).encode() + b"\n", end)
        reply = self._read_line(end)
        if reply.get("id") != request["id"]:
            raise ZygoteFailure("a reply to another request")
        n = len(request["inputs"])
        results, errors = reply.get("results"), reply.get("errors")
        if (
            reply.get("status") not in STATUSES
            or not isinstance(results, list)
            or not isinstance(errors, list)
            or len(results) != n
            or len(errors) != n
            or any(not (r is None or r is True or r is False) for r in results)
            or any(not (e is None or isinstance(e, str) and len(e) <= 80) for e in errors)
        ):
            raise ZygoteFailure("a malformed reply")
        return reply

    def _pipe(self, name: str) -> int:
        """The file descriptor of the running process's ``stdin`` or ``stdout`` (both are pipes)."""
        pipe = getattr(self.process, name, None)
        assert pipe is not None, "the zygote is started with both pipes"
        return pipe.fileno()

    def _write(self, data: bytes, end: float) -> None:
        fd = self._pipe("stdin")
        while data:
            left = end - time.monotonic()
            if left <= 0:
                raise ZygoteFailure("the zygote does not read its requests")
            if select.select([], [fd], [], left)[1]:
                try:
                    data = data[os.write(fd, data) :]
                except BlockingIOError:
                    continue
                except OSError as error:
                    raise ZygoteFailure(f"the zygote closed its pipe ({error.strerror})") from None

    def _read_line(self, end: float) -> dict:
        fd = self._pipe("stdout")
        while b"\n" not in self._buffer:
            left = end - time.monotonic()
            if left <= 0:
                raise ZygoteFailure("no reply before the deadline")
            if not select.select([fd], [], [], left)[0]:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise ZygoteFailure("the zygote died")
            self._buffer += chunk
            if len(self._buffer) > REPLY_CAP:
                raise ZygoteFailure("an oversized reply")
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError:
            raise ZygoteFailure("a reply that is not JSON") from None
        if not isinstance(message, dict):
            raise ZygoteFailure("a reply that is not a JSON object")
        return message

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return "no message"
        try:
            self._stderr.seek(0)
            return self._stderr.read()[-300:].decode(errors="replace").strip() or "no message"
        except (OSError, ValueError):
            return "no message"

    def kill(self) -> None:
        """SIGKILL the zygote's process group (bubblewrap's pid namespace takes everything inside)."""
        process, self.process = self.process, None
        if process is not None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log.warning("sandbox zygote %s did not exit after SIGKILL", process.pid)
            for pipe in (process.stdin, process.stdout):
                try:
                    if pipe is not None:
                        pipe.close()
                except OSError:
                    pass
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._buffer = b""


def zygote_command(level: str) -> list[str]:
    """The command line of a zygote at ``level`` (a seam for tests that make starts fail)."""
    return probe.runner_command(level, "--zygote")


class Pool:
    """``workers`` zygote slots, each started lazily on first use and restarted after a failure."""

    def __init__(self, level: str, workers: int) -> None:
        self.level = level
        self.workers = workers
        self._slots: queue.Queue = queue.Queue()
        for _ in range(workers):
            self._slots.put([None])
        self._spawner = _Spawner()
        self._failed_starts = 0
        self._lock = threading.Lock()
        self._all: list[list] = []
        self.zygote_failures = 0  # functions that took a zygote down (for tests and logs)

    def _start(self) -> Zygote:
        while True:
            zygote = Zygote(self.level)
            try:
                zygote.start(self._spawner)
            except ZygoteFailure as failure:
                with self._lock:
                    self._failed_starts += 1
                    failed = self._failed_starts
                log.warning("sandbox zygote failed to start (%d/%d): %s", failed, MAX_FAILED_STARTS, failure)
                if failed >= MAX_FAILED_STARTS:
                    raise SandboxUnavailableError(
                        f"the verifier sandbox ({self.level}) failed to start {failed} times in a row: {failure}",
                        hint="check that bubblewrap works (`bwrap --version`) or require a lower level",
                    ) from None
                continue
            with self._lock:
                self._failed_starts = 0
            return zygote

    def run(self, request: dict, timeout: float) -> dict:
        """The zygote's reply, or a ``sandbox_error`` reply after two zygotes failed on it."""
        slot = self._slots.get()
        try:
            with self._lock:
                if slot not in self._all:
                    self._all.append(slot)
            for _attempt in range(2):
                if slot[0] is None:
                    slot[0] = self._start()
                try:
                    return slot[0].call(request, timeout)
                except ZygoteFailure as failure:
                    self.zygote_failures += 1
                    log.warning("sandbox zygote failed on function %s: %s; restarting it", request["id"], failure)
                    slot[0].kill()
                    slot[0] = None
            n = len(request["inputs"])
            return {"status": "sandbox_error", "results": [None] * n, "errors": ["sandbox_error"] * n}
        finally:
            self._slots.put(slot)

    def close(self) -> None:
        with self._lock:
            slots, self._all = self._all, []
        for slot in slots:
            if slot[0] is not None:
                slot[0].kill()
                slot[0] = None


_registry: dict[tuple, Pool] = {}
_registry_lock = threading.Lock()


def get_pool(level: str, workers: int) -> Pool:
    """This process's pool for ``(level, workers)``, created on first use."""
    key = (os.getpid(), level, workers)
    with _registry_lock:
        pool = _registry.get(key)
        if pool is None:
            pool = _registry[key] = Pool(level, workers)
        return pool


def close_pool(level: str, workers: int) -> None:
    with _registry_lock:
        pool = _registry.pop((os.getpid(), level, workers), None)
    if pool is not None:
        pool.close()


def close_all() -> None:
    """Stop this process's zygotes (never those of the parent after a fork)."""
    pid = os.getpid()
    with _registry_lock:
        mine = [key for key in _registry if key[0] == pid]
        pools = [_registry.pop(key) for key in mine]
    for pool in pools:
        pool.close()


def _after_fork_in_child() -> None:
    # The parent's pools (their pipes, locks and threads) are not ours: forget them, never close them.
    global _registry, _registry_lock
    _registry = {}
    _registry_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(close_all)
