"""The public face of the verifier sandbox: :class:`Sandbox` and :class:`FunctionRun`."""

from __future__ import annotations

import itertools
import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from hfevol.errors import ConfigError, SandboxUnavailableError

log = logging.getLogger(__name__)

Status = Literal["ok", "compile_error", "missing_entry", "killed_timeout", "crashed", "sandbox_error"]
REQUIRE = (None, "process", "seccomp", "bwrap", "bwrap+seccomp")
MAX_FUNCTION_TIMEOUT = 30.0
HOST_GRACE = 5.0  # seconds the host waits beyond a function's deadline before it gives up on the zygote

_ids = itertools.count(1)
_warned: set[int] = set()
_warn_lock = threading.Lock()


@dataclass(frozen=True)
class FunctionRun:
    """What one function did on its inputs.

    ``results[i]`` is ``True``/``False`` only when the function returned a real bool; otherwise
    ``None`` with ``errors[i]`` one of ``"timeout"``, ``"invalid_return:<builtin type>"``, the
    builtin exception type name (``"ValueError"``, ``"SystemExit"``), or the function-wide
    status (``"missing_entry"``, ``"crashed"``, ``"sandbox_error"``; a killed function gives
    ``"timeout"`` for every input, a compile error the exception's type name). Never a message.
    """

    status: Status
    results: list[bool | None]
    errors: list[str | None]
    seconds: float
    level: str = field(default="", compare=False)


class Sandbox:
    """Runs model-written functions out of process, one fresh forked interpreter per function.

    ``per_input_timeout``: seconds per input (a per-input timer in the child); ``function_timeout``:
    wall seconds per function, after which the zygote SIGKILLs the child (default
    ``min(per_input_timeout * len(inputs) + 2, 30)``); ``require``: refuse to run below this
    level (``"process"``, ``"seccomp"``, ``"bwrap"``, ``"bwrap+seccomp"``: the named layers must
    all work); ``workers``: zygote processes (default ``min(2, cpu_count)``). The machine is
    probed once per process, lazily; the pool lives in a per-process registry, so a Sandbox
    pickles (and fingerprints) as its settings only.
    """

    def __init__(
        self,
        per_input_timeout: float = 1.0,
        function_timeout: float | None = None,
        require: str | None = None,
        workers: int | None = None,
        max_timeouts: int = 2,
    ) -> None:
        if not (isinstance(per_input_timeout, (int, float)) and math.isfinite(per_input_timeout) and per_input_timeout > 0):
            raise ConfigError(f"per_input_timeout must be a positive number of seconds, got {per_input_timeout!r}")
        if function_timeout is not None and not (isinstance(function_timeout, (int, float)) and math.isfinite(function_timeout) and function_timeout > 0):
            raise ConfigError(f"function_timeout must be a positive number of seconds, got {function_timeout!r}")
        if require not in REQUIRE:
            raise ConfigError(
                f"require must be one of {', '.join(map(str, REQUIRE[1:]))} or None, got {require!r}",
                hint='"bwrap+seccomp" is the strongest level; "process" accepts any',
            )
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ConfigError(f"workers must be a positive integer, got {workers!r}")
        if not isinstance(max_timeouts, int) or max_timeouts < 1:
            raise ConfigError(f"max_timeouts must be a positive integer, got {max_timeouts!r}")
        self.per_input_timeout = float(per_input_timeout)
        self.function_timeout = None if function_timeout is None else float(function_timeout)
        self.require = require
        self.workers = workers or min(2, os.cpu_count() or 1)
        self.max_timeouts = max_timeouts

    # -- settings only, for pickling and fingerprints ------------------------------------------
    def _settings(self) -> dict:
        return {
            "per_input_timeout": self.per_input_timeout,
            "function_timeout": self.function_timeout,
            "require": self.require,
            "workers": self.workers,
            "max_timeouts": self.max_timeouts,
        }

    def __getstate__(self) -> dict:
        return self._settings()

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        return f"Sandbox({shown})"

    # -- level ---------------------------------------------------------------------------------
    @property
    def level(self) -> str:
        """The level in use here (probed once per process); raises if below ``require``."""
        from hfevol.sandbox import probe

        found = probe.layers()
        level = found.level
        if self.require is not None:
            missing = probe.level_layers(self.require) - probe.level_layers(level)
            if missing:
                raise SandboxUnavailableError(
                    f"the verifier sandbox needs {self.require!r} but only {level!r} works here" + (f" ({found.detail})" if found.detail else ""),
                    hint=_hint(missing),
                )
        if "bwrap" not in probe.level_layers(level):
            _warn_once(level, found.detail)
        return level

    # -- running -------------------------------------------------------------------------------
    def run(self, source: str, inputs: Sequence[str], entry: str = "evaluate") -> FunctionRun:
        """Run ``entry`` from ``source`` on every input in one fresh sandboxed interpreter."""
        from hfevol.sandbox import pool

        if not isinstance(source, str):
            raise TypeError(f"source must be a string, not {type(source).__name__}")
        inputs = list(inputs)
        if not all(isinstance(text, str) for text in inputs):
            raise TypeError("every input must be a string")
        level = self.level
        if not inputs:
            return FunctionRun("ok", [], [], 0.0, level)
        deadline = self.function_timeout or min(self.per_input_timeout * len(inputs) + 2.0, MAX_FUNCTION_TIMEOUT)
        request = {
            "id": next(_ids),
            "source": source,
            "inputs": inputs,
            "entry": entry,
            "per_input_timeout": self.per_input_timeout,
            "deadline": deadline,
            "max_timeouts": self.max_timeouts,
        }
        started = time.monotonic()
        reply = pool.get_pool(level, self.workers).run(request, deadline + HOST_GRACE)
        return FunctionRun(reply["status"], reply["results"], reply["errors"], time.monotonic() - started, level)

    def run_many(self, jobs: Iterable[tuple[str, Sequence[str]]]) -> list[FunctionRun]:
        """Run ``(source, inputs)`` jobs concurrently over the pool; results in the jobs' order.

        A job may carry a third item, the entry name (default ``"evaluate"``).
        """
        jobs = list(jobs)
        self.level  # noqa: B018 - probe (and refuse) before any thread starts

        def one(job: tuple) -> FunctionRun:
            return self.run(job[0], job[1], *job[2:3])

        if len(jobs) <= 1 or self.workers == 1:
            return [one(job) for job in jobs]
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="hfevol-sandbox") as executor:
            return list(executor.map(one, jobs))

    def close(self) -> None:
        """Stop this process's zygotes of this sandbox's level (started again on the next run)."""
        from hfevol.sandbox import pool, probe

        pool.close_pool(probe.layers().level, self.workers)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _hint(missing: set[str]) -> str:
    parts = []
    if "bwrap" in missing:
        parts.append("install bubblewrap (`apt-get install -y bubblewrap`, or `make venv` as root) and check that `bwrap --unshare-all true` runs")
    if "seccomp" in missing:
        parts.append("install libseccomp (`apt-get install -y libseccomp2`)")
    return "; ".join(parts) + "; or pass a lower level to require"


def _warn_once(level: str, detail: str) -> None:
    with _warn_lock:
        if os.getpid() in _warned:
            return
        _warned.add(os.getpid())
    message = (
        f"the verifier sandbox runs at level {level!r}, without bubblewrap"
        + (f" ({detail})" if detail else "")
        + ": model-written code can read files and other processes' environments;"
        " install bubblewrap (`apt-get install -y bubblewrap`)"
    )
    log.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
