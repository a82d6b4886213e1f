"""Exclusive locks on the folders a command writes: an output, a release, a request cache.

A lock is an advisory ``flock`` on a small file *beside* the folder
(``<parent>/.<name>.hfevol-lock``), so that the folder itself can be swapped in with a
rename while the lock is held. The operating system drops the lock when the process that
holds it exits, however it exits (``kill -9`` included), so a lock is never left stale.
The lock file holds who took it (pid, host, command, time); a second command that finds
the folder locked reads it and stops with :class:`~hfevol.errors.LockedError`.

A process may take the same lock again while it holds it (the count is kept here), so a
command and the library code it calls can both lock one folder.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import LockedError

_HELD: dict[Path, tuple[IO[str], int]] = {}
_GUARD = threading.Lock()


def lock_path(folder: str | os.PathLike[str]) -> Path:
    """The lock file of ``folder``: a hidden file next to it."""
    folder = Path(folder).expanduser().absolute()
    return folder.parent / f".{folder.name}.hfevol-lock"


@contextlib.contextmanager
def exclusive_lock(folder: str | os.PathLike[str], *, what: str = "folder") -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` for the duration of the ``with`` block.

    Args:
        folder: the folder to protect (it need not exist yet; its parent is created).
        what: how messages name it (``"--out"``, ``"the release folder"``).

    Raises:
        LockedError: another process holds the lock; the message says which one.
    """
    path = lock_path(folder)
    with _GUARD:
        held = _HELD.get(path)
        if held is not None:
            _HELD[path] = (held[0], held[1] + 1)
    if held is None:
        _acquire(path, Path(folder), what)
    try:
        yield path
    finally:
        with _GUARD:
            handle, count = _HELD[path]
            if count > 1:
                _HELD[path] = (handle, count - 1)
            else:
                del _HELD[path]
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()


def _acquire(path: Path, folder: Path, what: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - kept open while the lock is held
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise LockedError(
            f"{what} {folder} is in use by another hfevol command ({_describe_holder(path)})",
            hint="wait for that command to finish, or write to another folder; the lock is released when its process exits.",
        ) from None
    handle.seek(0)
    handle.truncate()
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:200],
        "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    handle.write(json.dumps(holder))
    handle.flush()
    with _GUARD:
        _HELD[path] = (handle, 1)


def _describe_holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {holder['pid']} on {holder['host']}, `{holder['command']}`, since {holder['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"
