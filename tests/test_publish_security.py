"""The Hub token never reaches a written file, a log line, the terminal or an exception."""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path

import pytest
from _publish_helpers import TOKEN, hub, make_output  # noqa: F401 - hub is a fixture

from hfevol.errors import PublishError, UploadError
from hfevol.publish import publish, publish_from

pytestmark = pytest.mark.integration
REPO = "alice/leak-check"


def _files_with(root: Path, needle: bytes) -> tuple[int, list[Path]]:
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    return len(files), [p for p in files if needle in p.read_bytes()]


def test_token_appears_in_no_file_log_output_or_exception(hub, tmp_path, capfd, caplog):
    import datasets

    from hfevol.cli import main

    caplog.set_level(logging.DEBUG)  # every logger, at its most talkative
    out = make_output(tmp_path / "out", car=True)
    texts: list[str] = []

    assert main(["-v", "publish", str(out), "--repo", REPO, "--version", "v1", "--private"]) == 0
    assert main(["-v", "publish", str(out), "--version", "v1", "--local-dir", str(tmp_path / "release"), "--repo", REPO]) == 0
    hub.fail_next("commit")
    with pytest.raises(UploadError) as failed:
        publish(make_output(tmp_path / "out2", tag="b"), REPO, version="v2")
    texts.append("".join(traceback.format_exception(failed.value)))
    hub.fail_next("commit")
    assert main(["publish", str(tmp_path / "out2"), "--repo", REPO, "--version", "v2"]) == 2
    assert main(["publish", str(tmp_path / "out2"), "--repo", REPO, "--version", "v1"]) == 2  # existing tag, other content
    with pytest.raises(PublishError) as refused:
        publish_from(tmp_path / "release", REPO, version="v9")
    texts.append("".join(traceback.format_exception(refused.value)))
    assert main(["releases", REPO]) == 0
    assert datasets.load_dataset(REPO, revision="v1", split="train").num_rows == 6  # fills the HF caches too

    captured = capfd.readouterr()
    texts += [captured.out, captured.err, caplog.text, *(r.getMessage() for r in caplog.records)]
    assert "uploading the release failed" in captured.err  # the failing runs did print their errors
    assert all(TOKEN not in text for text in texts)

    searched, leaking = _files_with(tmp_path, TOKEN.encode())  # outputs, local release, test Hub store, HF_HOME caches
    assert leaking == []
    stored = {p.name for p in (tmp_path / "hub-store").rglob("*")}
    assert "repos.json" in stored and searched > 20  # the search did cover the Hub's stored files and caches
    assert any(p.is_file() for p in (tmp_path / "hf-home").rglob("*"))  # the HF caches were filled, and searched


def test_a_release_whose_files_hold_the_token_is_refused(hub, tmp_path):
    out = make_output(tmp_path / "out")
    run = json.loads((out / "hfevol_run.json").read_text())
    run["stages"][0]["backend"]["headers"] = {"Authorization": f"Bearer {TOKEN}"}
    (out / "hfevol_run.json").write_text(json.dumps(run))
    with pytest.raises(PublishError, match="hfevol_run.json contains your Hub token") as info:
        publish(out, REPO, version="v1")
    assert TOKEN not in "".join(traceback.format_exception(info.value))
    assert not any(p.endswith("/commit/main") for _, p, _ in hub.requests)
    searched, leaking = _files_with(tmp_path / "hub-store", TOKEN.encode())
    assert leaking == []


@pytest.mark.parametrize("login", [False, True], ids=["HF_TOKEN", "stored-login"])
def test_a_local_release_whose_files_hold_the_token_is_refused(tmp_path, monkeypatch, capsys, login):
    import subprocess

    import huggingface_hub.constants as hc

    from hfevol.cli import main

    if login:
        Path(hc.HF_TOKEN_PATH).parent.mkdir(parents=True, exist_ok=True)
        Path(hc.HF_TOKEN_PATH).write_text(TOKEN)
    else:
        monkeypatch.setenv("HF_TOKEN", TOKEN)
    out = make_output(tmp_path / "out")
    (out / "car.md").write_text(f"| generator | note |\n| --- | --- |\n| a | {TOKEN} |\n")
    release = tmp_path / "release"
    with pytest.raises(PublishError, match="car.md contains your Hub token") as info:
        publish(out, version="v1", local_dir=release)
    assert TOKEN not in "".join(traceback.format_exception(info.value))
    assert main(["publish", str(out), "--version", "v1", "--local-dir", str(release), "--repo", REPO]) == 2
    assert TOKEN not in capsys.readouterr().err
    refs = subprocess.run(["git", "-C", str(release), "for-each-ref"], capture_output=True, text=True, check=True).stdout
    assert refs == ""  # no commit, no tag
    assert [p.name for p in release.iterdir()] == [".git"]
