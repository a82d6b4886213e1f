"""A local publish killed at any step, and two publishes at once, into one release folder.

The publishes run as real `hfevol publish` processes; ``HFEVOL_TEST_PAUSE_AT`` (the test hook of
``hfevol.publish.git``) stops one at a step, where it is killed with SIGKILL.
"""

from __future__ import annotations

import hashlib
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from _publish_helpers import make_output

from hfevol.publish import publish

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("locked", "objects", "commit", "ref", "tag")  # as documented in hfevol/publish/git.py, in order
DEADLINE = 120.0


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "hfevol.cli", *args]


class _Running:
    """A publish process whose stderr is read line by line by a thread, so that waits can have deadlines."""

    def __init__(self, args: list[str], **env: str) -> None:
        self.proc = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(**env))
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.proc.stderr], daemon=True).start()  # type: ignore[union-attr]

    def wait_for(self, text: str) -> None:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if text in line:
                return
        self.proc.kill()
        raise AssertionError(f"{text!r} not printed within {DEADLINE} s; stderr: {''.join(self.seen)}")

    def stderr(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)


@pytest.fixture
def running():
    started: list[_Running] = []

    def start(args: list[str], **env: str) -> _Running:
        started.append(_Running(args, **env))
        return started[-1]

    yield start
    for run in started:  # none outlives its test
        run.proc.kill()
        run.proc.wait(timeout=30)


def _expected_files(out: Path) -> set[str]:
    """The tree a release of ``make_output(out)`` (one config, scores) must have, worked out by hand."""
    digest = hashlib.sha256((out / "data/train.parquet").read_bytes()).hexdigest()[:12]
    return {"README.md", "hfevol_run.json", f"data/train-{digest}.parquet", "plots/ic_ifd.png", "plots/ifd.png"}


def _tree(release: Path, rev: str) -> set[str]:
    return set(_git(release, "ls-tree", "-r", "--name-only", rev).split())


def _working_files(release: Path) -> set[str]:
    return {p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file() and ".git" not in p.relative_to(release).parts}


def _shows(release: Path, version: str) -> bool:
    """Whether the working tree holds exactly the files of tag ``version``, byte for byte."""
    tree = _tree(release, version)
    show = lambda path: subprocess.run(["git", "-C", str(release), "show", f"{version}:{path}"], capture_output=True, check=True).stdout  # noqa: E731
    return _working_files(release) == tree and all((release / p).read_bytes() == show(p) for p in tree)


def _assert_released(release: Path, version: str, out: Path) -> None:
    import datasets

    files = _expected_files(out)
    assert _tree(release, version) == files
    data = next(p for p in files if p.startswith("data/"))
    assert (
        subprocess.run(["git", "-C", str(release), "show", f"{version}:{data}"], capture_output=True, check=True).stdout
        == (out / "data/train.parquet").read_bytes()
    )
    assert _git(release, "show", f"{version}:hfevol_run.json") == (out / "hfevol_run.json").read_text()
    assert _git(release, "status", "--porcelain", "--untracked-files=all") == ""
    assert _git(release, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert _git(release, "rev-parse", "HEAD").strip() == _git(release, "rev-parse", f"{version}^{{commit}}").strip()
    assert _shows(release, version)
    assert datasets.load_dataset(str(release), split="train").to_list() == pq.read_table(out / "data/train.parquet").to_pylist()


@pytest.mark.parametrize("step, first", [*((s, False) for s in STEPS), ("ref", True), ("tag", True)],
                         ids=[*(f"{s}-after-v1" for s in STEPS), "ref-first-release", "tag-first-release"])  # fmt: skip
def test_a_publish_killed_at_any_step_is_finished_by_the_same_command(tmp_path, running, step, first):
    a, b = make_output(tmp_path / "a", tag="a"), make_output(tmp_path / "b", 9, tag="b")
    release = tmp_path / "release"
    if not first:
        v1 = publish(a, version="v1", local_dir=release).commit
    args = ["publish", str(b), "--version", "v2", "--local-dir", str(release)]
    killed = running(args, HFEVOL_TEST_PAUSE_AT=step)
    killed.wait_for(f"hfevol-test-paused {step}")
    killed.proc.kill()
    assert killed.proc.wait(timeout=30) == -9
    # the working tree was not touched: it still shows v1 (or nothing at all), never unreleased data
    assert _shows(release, "v1") if not first else _working_files(release) == set()
    again = subprocess.run(_cli(*args), capture_output=True, text=True, env=_env(), timeout=DEADLINE)
    assert again.returncode == 0, again.stderr
    assert "publish v2 to local release folder" in again.stdout
    _assert_released(release, "v2", b)
    if not first:
        assert _git(release, "rev-parse", "v1^{commit}").strip() == v1 and _tree(release, "v1") == _expected_files(a)


def test_a_second_publish_into_a_locked_release_folder_says_who_holds_it(tmp_path, running):
    a, b = make_output(tmp_path / "a", tag="a"), make_output(tmp_path / "b", tag="b")
    release = tmp_path / "release"
    holder = running(["publish", str(a), "--version", "v1", "--local-dir", str(release)], HFEVOL_TEST_PAUSE_AT="locked")
    holder.wait_for("hfevol-test-paused locked")
    second = subprocess.run(
        _cli("publish", str(b), "--version", "v2", "--local-dir", str(release)), capture_output=True, text=True, env=_env(), timeout=DEADLINE
    )
    assert second.returncode == 2
    assert "the release folder" in second.stderr and "in use by another hfevol command" in second.stderr
    assert f"pid {holder.proc.pid}" in second.stderr
    assert not (release / ".git").exists() or _git(release, "tag", "--list") == ""  # the second one wrote nothing
    holder.proc.kill()
    holder.proc.wait(timeout=30)


def test_concurrent_publishes_never_tag_the_other_runs_files(tmp_path, running):
    release = tmp_path / "release"
    publish(make_output(tmp_path / "seed", tag="seed"), version="v1", local_dir=release)
    for attempt in range(3):
        outs = {f"v{attempt}.{i}": make_output(tmp_path / f"run{attempt}-{i}", 4 + i, tag=f"{attempt}-{i}") for i in (1, 2)}
        runs = {v: running(["publish", str(out), "--version", v, "--local-dir", str(release)]) for v, out in outs.items()}
        done = {v: r.proc.wait(timeout=DEADLINE) for v, r in runs.items()}
        for version, code in done.items():
            if code == 0:
                assert _tree(release, version) == _expected_files(outs[version])  # its own files, no other run's
            else:
                assert code == 2 and "in use by another hfevol command" in runs[version].stderr(), runs[version].stderr()
                assert version not in _git(release, "tag", "--list").split()
        assert 0 in done.values()
        assert _git(release, "status", "--porcelain", "--untracked-files=all") == ""
