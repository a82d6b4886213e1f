"""Which isolation layers work on this machine, probed once per process, and the zygote command.

Layers: ``bwrap`` (bubblewrap namespaces: no network, read-only minimal binds, own pid
namespace) and ``seccomp`` (the deny-list filter of :mod:`hfevol.sandbox.seccomp`). A level is
their combination: ``"bwrap+seccomp"``, ``"bwrap"``, ``"seccomp"`` or ``"process"`` (a clean
environment and rlimits only).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "runner.py"
SECCOMP = HERE / "seccomp.py"
INSIDE = "/sbx"  # where the two trusted files appear inside bubblewrap
SCRATCH = "/tmp"  # the 16 MiB tmpfs that is the sandbox's working directory
LEVELS = ("process", "seccomp", "bwrap", "bwrap+seccomp")
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0"}
PROBE_TIMEOUT = 20.0


@dataclass(frozen=True)
class Layers:
    """What works here. ``detail`` says why a layer is missing (for warnings and errors)."""

    bwrap: bool
    seccomp: bool
    detail: str = ""

    @property
    def level(self) -> str:
        if self.bwrap:
            return "bwrap+seccomp" if self.seccomp else "bwrap"
        return "seccomp" if self.seccomp else "process"


def level_layers(level: str) -> set[str]:
    """The layers a level names: ``"bwrap+seccomp"`` -> ``{"bwrap", "seccomp"}``; ``"process"`` -> empty."""
    return set() if level == "process" else set(level.split("+"))


def python_executable() -> str:
    """The real interpreter (a venv's ``python`` is a symlink to it; the venv itself is not bound)."""
    return os.path.realpath(sys.executable)


def bwrap_command(bwrap: str) -> list[str]:
    """bubblewrap with minimal read-only binds (never ``--ro-bind / /``: as root it shows root-only files)."""
    python = python_executable()
    args = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for link, target in (("/lib", "usr/lib"), ("/lib64", "usr/lib64"), ("/bin", "usr/bin"), ("/sbin", "usr/sbin")):
        if os.path.islink(link):
            args += ["--symlink", target, link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    prefixes = {os.path.realpath(sys.base_prefix), str(Path(python).parent.parent)}
    for prefix in sorted(prefixes):
        if prefix != "/usr" and not prefix.startswith("/usr/") and os.path.isdir(prefix):
            args += ["--ro-bind", prefix, prefix]
    if os.path.exists("/etc/ld.so.cache"):
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    args += [
        "--size",
        str(16 * 1024 * 1024),
        "--tmpfs",
        SCRATCH,
        "--ro-bind",
        str(RUNNER),
        f"{INSIDE}/runner.py",
        "--ro-bind",
        str(SECCOMP),
        f"{INSIDE}/seccomp.py",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--clearenv",
    ]
    for key, value in CLEAN_ENV.items():
        args += ["--setenv", key, value]
    args += [
        "--chdir",
        SCRATCH,
        "--cap-drop",
        "ALL",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--remount-ro",
        "/",
        python,
        "-S",
        "-s",
        "-B",
        f"{INSIDE}/runner.py",
    ]
    return args


def runner_command(level: str, mode: str = "--zygote") -> list[str]:
    """The command that starts the runner at ``level`` (``mode``: ``--zygote``, ``--once``, ``--probe``)."""
    layers = level_layers(level)
    config = json.dumps({"seccomp": "seccomp" in layers})
    if "bwrap" in layers:
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise FileNotFoundError("bwrap")
        return [*bwrap_command(bwrap), mode, config]
    return [python_executable(), "-S", "-s", "-B", str(RUNNER), mode, config]


def _run_probe(command: list[str]) -> dict | None:
    try:
        done = subprocess.run(
            command,
            env=dict(CLEAN_ENV),
            cwd="/",
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        log.debug("sandbox probe %s failed: %s", command[0], error)
        return None
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        log.debug("sandbox probe %s: rc %s, %s", command[0], done.returncode, done.stderr[-500:])
        return None
    try:
        return json.loads(lines[-1])
    except ValueError:
        return None


def detect() -> Layers:
    """Probe the layers (runs a process or two; use :func:`layers` for the cached answer)."""
    if not sys.platform.startswith("linux"):
        return Layers(False, False, "bubblewrap and seccomp exist only on Linux")
    notes = []
    if shutil.which("bwrap") is None:
        notes.append("bwrap is not installed")
    else:
        inside = _run_probe(runner_command("bwrap", "--probe"))
        if inside is not None:
            return Layers(True, bool(inside.get("seccomp")), "" if inside.get("seccomp") else str(inside.get("why")))
        notes.append("bwrap is installed but cannot create namespaces here")
    plain = _run_probe(runner_command("process", "--probe"))
    seccomp_ok = bool(plain and plain.get("seccomp"))
    if not seccomp_ok:
        notes.append(f"seccomp is unavailable ({(plain or {}).get('why', 'probe failed')})")
    return Layers(False, seccomp_ok, "; ".join(notes))


_cached: Layers | None = None
_lock = threading.Lock()


def layers() -> Layers:
    """The layers of this machine, probed on first use and cached for the process."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = detect()
        return _cached
