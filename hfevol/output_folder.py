"""Output folders: checked writable before any work, locked while a command runs, replaced whole.

A command that writes a folder first *claims* it (:func:`claimed`): the folder (or the
nearest folder above it that exists) must be a writable directory, checked with a probe
file before any model is loaded; the folder is locked (:func:`hfevol.locks.exclusive_lock`)
so that a second command writing it stops at once; and a swap that a killed process left
half done is finished or undone.

The output itself is written by :func:`staged`: every file goes into a hidden folder next to
the output (``.<name>.hfevol-new``), which is then swapped in with renames (the old folder
becomes ``.<name>.hfevol-old`` and is deleted). Entries of the old folder that the new
output does not write itself (the request cache in ``.hfevol-cache``, files a user keeps
there) are moved into the new folder first. A reader sees the old output or the new one,
never a mix; a failure before the swap leaves the old folder untouched and no temporary
files behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputError
from .locks import exclusive_lock


def _absolute(path: str | os.PathLike[str]) -> Path:
    """The real path (symlinks resolved), so that the staging folder lands beside the real folder."""
    return Path(os.path.realpath(Path(path).expanduser()))


def _staging(out: Path) -> Path:
    return out.parent / f".{out.name}.hfevol-new"


def _manifest(out: Path) -> Path:
    """Written once the staging folder is complete: the names the new output writes itself."""
    return out.parent / f".{out.name}.hfevol-new.json"


def _backup(out: Path) -> Path:
    return out.parent / f".{out.name}.hfevol-old"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_writable(path: str | os.PathLike[str], *, option: str = "--out") -> Path:
    """Check that a folder can be written at ``path``, and return it (absolute).

    ``path`` must be a folder or not exist yet; the folder itself (if it exists) and the
    nearest existing folder above it must take a new file (a probe file is created there
    and removed), since outputs are built beside the folder and swapped in.

    Raises:
        OutputError: ``path`` is a file, lies under a file, or the folder is not writable
            (read-only mount, ``/proc``, no permission, full disk).
    """
    target = _absolute(path)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{option} {path} is a file, not a folder", hint=f"give {option} a folder path (it is created if missing).")
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"{option} {path} lies under {ancestor}, which is a file", hint=f"give {option} a folder path outside that file.")
    for folder in ([target] if target.is_dir() else []) + [ancestor]:
        try:
            fd, probe = tempfile.mkstemp(prefix=".hfevol-probe-", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise OutputError(
                f"{option} {path} is not writable: cannot create a file in {folder} ({_reason(exc)})",
                hint=f"give {option} a folder on a writable disk with free space.",
            ) from None
    return target


@contextlib.contextmanager
def claimed(folder: str | os.PathLike[str], *, option: str = "--out", cache: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Claim ``folder`` for a command that writes it: checked writable, locked, any half swap finished.

    Args:
        folder: the output folder.
        option: how messages name it (``"--out"``, ``"--local-dir"``).
        cache: the request cache file, when the command uses one; if it lies outside
            ``folder`` its folder is checked too and the file is locked as well.

    Raises:
        OutputError: a folder is not writable (see :func:`check_writable`).
        LockedError: another command holds one of the locks.
    """
    out = check_writable(folder, option=option)
    with contextlib.ExitStack() as stack:
        stack.enter_context(exclusive_lock(out, what=option))
        if cache is not None and not _absolute(cache).is_relative_to(out):
            check_writable(_absolute(cache).parent, option="--cache folder")
            stack.enter_context(exclusive_lock(_absolute(cache), what="--cache"))
        with output_errors(folder, option=option):
            recover(out)
        yield out


@contextlib.contextmanager
def output_errors(path: str | os.PathLike[str], *, option: str = "--out") -> Iterator[None]:
    """Turn an ``OSError`` raised inside the block (full disk, read-only mount) into one-line :class:`OutputError`."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        raise OutputError(
            f"cannot write {option} {path}: {_reason(exc)}{where}",
            hint="free some disk space or give another folder; the previous output, if any, is unchanged.",
        ) from exc


@contextlib.contextmanager
def staged(folder: str | os.PathLike[str], *, option: str = "--out") -> Iterator[Path]:
    """Yield an empty folder beside ``folder`` to write a whole output into; swap it in when the block ends.

    If the block raises, the staging folder is removed and ``folder`` is left as it was;
    an ``OSError`` becomes an :class:`OutputError`. Takes the folder's lock (re-entrant,
    so a command that :func:`claimed` it already holds it).
    """
    out = _absolute(folder)
    with exclusive_lock(out, what=option):
        with output_errors(folder, option=option):
            recover(out)
        staging = _staging(out)
        try:
            with output_errors(folder, option=option):
                staging.mkdir(parents=True)
                yield staging
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        with output_errors(folder, option=option):
            try:
                _swap(staging, out)
            except BaseException:
                recover(out)  # rolls the swap forward when it got past the old folder, else back
                raise


def _swap(staging: Path, out: Path) -> None:
    own = sorted(entry.name for entry in staging.iterdir())
    manifest = _manifest(out)
    manifest.write_text(json.dumps({"own": own}))
    backup = _backup(out)
    if out.exists():
        for entry in sorted(out.iterdir()):
            if entry.name not in own:  # kept: the request cache, files the output does not write
                entry.rename(staging / entry.name)
        out.rename(backup)
    staging.rename(out)
    manifest.unlink()
    _follow_cwd(backup, out)
    shutil.rmtree(backup, ignore_errors=True)


def _follow_cwd(backup: Path, out: Path) -> None:
    """A process working inside the old folder moves to the same place in the new one (the old one is deleted)."""
    try:
        cwd = Path(os.getcwd())
    except FileNotFoundError:
        return
    if cwd.is_relative_to(backup):
        target = out / cwd.relative_to(backup)
        os.chdir(target if target.is_dir() else out)


def recover(folder: str | os.PathLike[str]) -> None:
    """Finish or undo a swap of ``folder`` that a killed process left half done (call it under the folder's lock).

    A complete staging folder whose old folder was already moved away is swapped in; an
    incomplete one is removed, after the old folder's entries it had taken are moved back.
    """
    out = _absolute(folder)
    staging, manifest, backup = _staging(out), _manifest(out), _backup(out)
    own: list[str] | None = None
    if manifest.exists():
        try:
            own = list(json.loads(manifest.read_text())["own"])
        except (OSError, ValueError, KeyError, TypeError):
            own = None
    if staging.exists():
        if own is not None and not out.exists():
            staging.rename(out)
        else:
            for entry in sorted(staging.iterdir()) if own is not None else []:
                if own is not None and entry.name not in own and not (out / entry.name).exists():
                    entry.rename(out / entry.name)
            shutil.rmtree(staging)
    if backup.exists():
        if out.exists():
            shutil.rmtree(backup)
        else:
            backup.rename(out)
    manifest.unlink(missing_ok=True)
