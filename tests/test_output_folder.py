"""Output folders: refused before any work when they cannot be written, replaced whole, locked against a second command."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from _servers import rows

from hfevol.cli import main
from hfevol.errors import OutputError
from hfevol.io import RUN_FILE, write_output
from hfevol.locks import exclusive_lock
from hfevol.output_folder import check_writable
from hfevol.testing import TGITestServer


def _tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones included) by relative path, with its SHA-256."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(parent: Path) -> list[str]:
    """Staging or backup folders, manifests and temporary files that a write left beside or inside its output."""
    return sorted(str(p.relative_to(parent)) for p in parent.rglob("*") if ".hfevol-new" in p.name or ".hfevol-old" in p.name or p.name.endswith(".tmp"))


def _rounds(n_rounds: int, tag: str):
    from datasets import Dataset

    return Dataset.from_list([{"id": f"{tag}-{r}-{i}", "round": r, "text": f"{tag} round {r} row {i}"} for r in range(1, n_rounds + 1) for i in range(3)])


def _error_lines(stderr: str) -> list[str]:
    """What the CLI printed from its error on (progress bars print before it)."""
    text = stderr[stderr.index("error: ") :]
    return text.strip().splitlines()


def _seeds(tmp_path: Path, n: int = 3) -> Path:
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows(n)))
    return path


# --- writability, checked before any work ---------------------------------------------------


def test_folders_that_cannot_be_written_are_refused_with_the_option_named(tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(OutputError, match=r"^--out .*notes.txt is a file, not a folder"):
        check_writable(a_file)
    with pytest.raises(OutputError, match=r"^--local-dir .*notes.txt/release lies under .*notes.txt, which is a file"):
        check_writable(a_file / "release", option="--local-dir")
    with pytest.raises(OutputError, match=r"^--out /proc/hfevol/out is not writable: cannot create a file in /proc"):
        check_writable("/proc/hfevol/out")
    assert check_writable(tmp_path / "new" / "out") == tmp_path / "new" / "out"
    assert not (tmp_path / "new").exists()  # checking creates nothing
    assert [p.name for p in tmp_path.iterdir() if "probe" in p.name] == []  # the probe file is gone


def test_a_read_only_disk_is_refused(tmp_path, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(OutputError, match=r"is not writable: cannot create a file in .* \(Read-only file system\)"):
        check_writable(tmp_path / "out")


def test_evolve_and_respond_refuse_an_unwritable_out_before_any_request(tmp_path, capsys):
    seeds = _seeds(tmp_path)
    (tmp_path / "file").write_text("x")
    with TGITestServer() as srv:
        for command in ("evolve", "respond"):
            for out in (tmp_path / "file" / "out", Path("/proc/hfevol-out")):
                code = main([command, "--dataset", str(seeds), "--out", str(out), "--endpoint", srv.url])
                err = capsys.readouterr().err
                assert code == 2
                assert err.startswith("error: --out ") and len(err.strip().splitlines()) == 2  # the message and its hint, nothing before
        assert srv.log == []  # not even the start-up probe reached the server


@pytest.mark.parametrize("command", ["score", "select", "car"])
def test_score_select_and_car_refuse_an_unwritable_out_before_any_work(command, tmp_path, monkeypatch, capsys):
    import hfevol.car.metrics
    import hfevol.cli.score
    import hfevol.io

    def work_started(*args, **kwargs):
        raise AssertionError("work started before --out was checked")

    monkeypatch.setattr(hfevol.cli.score, "_scorer", work_started)
    monkeypatch.setattr(hfevol.io, "load_rows", work_started)  # every command loads its rows through it
    monkeypatch.setattr(hfevol.car.metrics, "check_beta", work_started)
    (tmp_path / "file").write_text("x")
    out = str(tmp_path / "file" / "out")
    argv = {
        "score": ["score", "--out", out],
        "select": ["select", "--dataset", str(tmp_path), "--out", out],
        "car": ["car", "--generator", "embedded", "--reward", "judge:embedded", "--out", out],
    }[command]
    assert main(argv) == 2
    assert "error: --out " in capsys.readouterr().err


def test_retry_failed_and_publish_check_their_folders_first(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["retry-failed", "/proc/hfevol-out"]) == 2
    assert "error: the output folder /proc/hfevol-out is not writable" in capsys.readouterr().err
    source = tmp_path / "out"
    write_output(_rounds(1, "a"), source, {"stages": []})
    assert main(["publish", str(source), "--version", "v1", "--local-dir", str(tmp_path / "file" / "rel")]) == 2
    assert "error: --local-dir " in capsys.readouterr().err
    assert not (tmp_path / "file-release").exists()


# --- a full disk during a run ---------------------------------------------------------------


def test_a_full_disk_while_writing_is_one_line_and_leaves_no_litter(tmp_path, monkeypatch, capsys):
    from datasets import Dataset

    out = tmp_path / "out"
    write_output(_rounds(2, "old"), out, {"run": "old"})
    before = _tree(out)

    def disk_full(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(Dataset, "to_parquet", disk_full)
    with pytest.raises(OutputError, match=r"^cannot write --out .*out: No space left on device"):
        write_output(_rounds(2, "new"), out, {"run": "new"})
    assert _tree(out) == before
    assert _leftovers(tmp_path) == []

    (tmp_path / "scored.jsonl").write_text(json.dumps({"instruction": "a", "output": "b", "ic_ifd": 0.5}) + "\n")
    assert main(["select", "--dataset", str(tmp_path / "scored.jsonl"), "--out", str(out), "--top", "1"]) == 2
    err = capsys.readouterr().err
    assert _error_lines(err)[0].startswith("error: cannot write --out") and len(_error_lines(err)) == 2 and "Traceback" not in err
    assert _tree(out) == before and _leftovers(tmp_path) == []


def test_a_full_request_cache_is_one_line_naming_the_cache(tmp_path, monkeypatch, capsys):
    from hfevol.cache import RequestCache

    connect = RequestCache._conn

    def small_disk(self):  # SQLite's own page limit: inserts fail with SQLITE_FULL, as on a full disk
        conn = connect(self)
        conn.execute("PRAGMA max_page_count = 8")
        return conn

    monkeypatch.setattr(RequestCache, "_conn", small_disk)
    seeds, out = _seeds(tmp_path, 40), tmp_path / "out"
    with TGITestServer() as srv:
        code = main(["evolve", "--dataset", str(seeds), "--out", str(out), "--endpoint", srv.url, "--no-elimination"])
    err = capsys.readouterr().err
    assert code == 2
    assert _error_lines(err)[0].startswith(f"error: the request cache {out / '.hfevol-cache' / 'requests.sqlite'} cannot be used: database or disk is full")
    assert not (out / RUN_FILE).exists() and _leftovers(tmp_path) == []


def test_the_request_cache_wraps_sqlite_errors(tmp_path):
    from hfevol.backends.base import GenerationRequest, GenerationResult, SamplingParams
    from hfevol.cache import RequestCache, request_key

    cache = RequestCache(tmp_path / "requests.sqlite")
    cache._conn().execute("PRAGMA max_page_count = 4")
    request = GenerationRequest(messages=(("user", "hello"),), params=SamplingParams(), seed=1)
    with pytest.raises(OutputError, match="cannot be used: database or disk is full") as info:
        cache.put(request_key({}, request), request, GenerationResult(text="x" * 100_000, finish_reason="stop"))
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert len(cache) == 0


# --- a whole output or none -----------------------------------------------------------------


def test_a_failure_half_way_leaves_the_previous_output_byte_for_byte(tmp_path, monkeypatch):
    from datasets import Dataset

    out = tmp_path / "out"
    write_output(_rounds(2, "old"), out, {"run": "old"})
    (out / ".hfevol-cache").mkdir()
    (out / ".hfevol-cache" / "requests.sqlite").write_bytes(b"answers so far")
    before = _tree(out)
    written = []
    real = Dataset.to_parquet

    def fails_on_the_second_round(self, path, *args, **kwargs):
        if written:
            raise RuntimeError("writer failed on the second round")
        written.append(path)
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(Dataset, "to_parquet", fails_on_the_second_round)
    with pytest.raises(RuntimeError, match="second round"):
        write_output(_rounds(3, "new"), out, {"run": "new"})
    assert len(written) == 1  # round 1 of the new run was written, somewhere else
    assert _tree(out) == before
    assert _leftovers(tmp_path) == []


def test_a_rewrite_replaces_data_and_record_and_keeps_the_request_cache(tmp_path):
    import datasets

    out = tmp_path / "out"
    write_output(_rounds(3, "old"), out, {"run": "old"})
    (out / ".hfevol-cache").mkdir()
    (out / ".hfevol-cache" / "requests.sqlite").write_bytes(b"answers so far")
    (out / "notes.md").write_text("mine")
    write_output(_rounds(1, "new"), out, {"run": "new"}, extra=lambda folder: (folder / "plot.png").write_bytes(b"png"))
    assert sorted(_tree(out)) == [".hfevol-cache/requests.sqlite", "data/round_1/train.parquet", RUN_FILE, "notes.md", "plot.png"]
    assert (out / ".hfevol-cache" / "requests.sqlite").read_bytes() == b"answers so far"
    assert (out / "notes.md").read_text() == "mine"
    assert json.loads((out / RUN_FILE).read_text())["run"] == "new"
    assert datasets.Dataset.from_parquet(str(out / "data" / "round_1" / "train.parquet"))["id"] == ["new-1-0", "new-1-1", "new-1-2"]
    assert _leftovers(tmp_path) == []


_KILLED_AT_RENAME = """
import os, sys
from datasets import Dataset
from hfevol.io import write_output

n, real, count = int(sys.argv[2]), os.rename, [0]
def rename(*args, **kwargs):
    count[0] += 1
    if count[0] == n:
        os._exit(9)  # killed: no cleanup runs
    return real(*args, **kwargs)
os.rename = rename
write_output(Dataset.from_list([{"id": "new", "round": 1}]), sys.argv[1], {"run": "new"})
"""


def test_a_write_killed_at_any_rename_is_finished_or_undone_by_the_next_command(tmp_path):
    from hfevol.output_folder import claimed

    results = set()
    for n in range(1, 6):  # two carried entries, old -> backup, staging -> out: four renames, then none
        out = tmp_path / f"kill{n}" / "out"
        write_output(_rounds(2, "old"), out, {"run": "old"})
        (out / ".hfevol-cache").mkdir()
        (out / ".hfevol-cache" / "requests.sqlite").write_bytes(b"answers so far")
        (out / "notes.md").write_text("mine")
        proc = subprocess.run([sys.executable, "-c", _KILLED_AT_RENAME, str(out), str(n)], capture_output=True, text=True, timeout=120)
        assert proc.returncode in (0, 9), proc.stderr
        with claimed(out):  # what every command does first
            pass
        record = json.loads((out / RUN_FILE).read_text())["run"]
        data = sorted(str(p.relative_to(out)) for p in (out / "data").rglob("*.parquet"))
        assert (record, data) in [("old", ["data/round_1/train.parquet", "data/round_2/train.parquet"]), ("new", ["data/round_1/train.parquet"])]
        assert (out / ".hfevol-cache" / "requests.sqlite").read_bytes() == b"answers so far"
        assert (out / "notes.md").read_text() == "mine"
        assert _leftovers(out.parent) == []
        results.add((record, proc.returncode))
    assert results == {("old", 9), ("new", 9), ("new", 0)}  # killed before the swap, killed after it, not killed


# --- one command at a time ------------------------------------------------------------------


def test_a_second_command_on_a_locked_out_stops_with_one_line_naming_the_holder(tmp_path):
    seeds, out = _seeds(tmp_path), tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with TGITestServer() as srv, exclusive_lock(out, what="--out"):
        proc = subprocess.run([sys.executable, "-m", "hfevol.cli", "evolve", "--dataset", str(seeds), "--out", str(out), "--endpoint", srv.url],
                              capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
        assert srv.log == []
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith(f"error: --out {out} is in use by another hfevol command (pid {os.getpid()} ")
    assert lines[1].startswith("Hint: ") and len(lines) == 2
    assert not out.exists()


def test_a_request_cache_outside_out_is_locked_too(tmp_path):
    seeds, out, cache = _seeds(tmp_path), tmp_path / "out", tmp_path / "shared" / "requests.sqlite"
    with TGITestServer() as srv, exclusive_lock(cache, what="--cache"):
        proc = subprocess.run([sys.executable, "-m", "hfevol.cli", "evolve", "--dataset", str(seeds), "--out", str(out), "--endpoint", srv.url,
                               "--cache", str(cache)], capture_output=True, text=True, timeout=120)  # fmt: skip
        assert srv.log == []
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: --cache {cache} is in use by another hfevol command (pid {os.getpid()} ")


def test_out_given_as_the_current_folder_or_through_a_symlink(tmp_path, monkeypatch):
    real = tmp_path / "real"
    write_output(_rounds(1, "old"), real, {"run": "old"})
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    write_output(_rounds(1, "linked"), tmp_path / "link", {"run": "linked"})
    assert (tmp_path / "link").is_symlink() and json.loads((real / RUN_FILE).read_text())["run"] == "linked"

    monkeypatch.chdir(real)
    write_output(_rounds(1, "here"), ".", {"run": "here"})
    assert Path(os.getcwd()) == real  # the process follows its folder into the new output
    assert json.loads(Path(RUN_FILE).read_text())["run"] == "here"
    assert _leftovers(tmp_path) == []


def test_write_output_does_not_import_evolution(tmp_path):
    code = (
        "import sys\nfrom datasets import Dataset\nfrom hfevol.io import write_output\n"
        f"write_output(Dataset.from_list([{{'id': 'a', 'round': 1}}, {{'id': 'b', 'round': 2}}]), {str(tmp_path / 'out')!r}, {{}})\n"
        "print(sorted(m for m in sys.modules if m.startswith('hfevol.evolution')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert sorted(p.parent.name for p in (tmp_path / "out" / "data").rglob("*.parquet")) == ["round_1", "round_2"]
