"""The folder locks: a second process is refused with who holds the lock; a killed holder frees it."""

import subprocess
import sys

import pytest

from hfevol.errors import LockedError
from hfevol.locks import exclusive_lock, lock_path

_HOLD = "from hfevol.locks import exclusive_lock\nimport time\nwith exclusive_lock({path!r}):\n    print('held', flush=True)\n    time.sleep(60)\n"


def test_a_second_process_is_refused_until_the_holder_dies(tmp_path):
    folder = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD.format(path=str(folder))], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=rf"--out {folder} is in use .*pid {holder.pid}"), exclusive_lock(folder, what="--out"):
            pass
    finally:
        holder.kill()
        holder.wait(timeout=30)
    with exclusive_lock(folder):  # kill -9 released it
        pass


def test_the_same_process_may_take_its_lock_again(tmp_path):
    folder = tmp_path / "out"
    with exclusive_lock(folder) as path:
        with exclusive_lock(folder):
            pass
        assert path == lock_path(folder)
        assert not folder.exists()  # the lock lives beside the folder, not in it
        code = f"from hfevol.locks import exclusive_lock\nwith exclusive_lock({str(folder)!r}): pass"
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert other.returncode != 0 and "LockedError" in other.stderr  # still held after the inner release
