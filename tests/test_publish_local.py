"""Local releases (a git folder with one tag per version), the card, and the input checks."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from _publish_helpers import make_output
from hub.metadata import validate_card_yaml

from hfevol.errors import ConfigError, DatasetNotFoundError, EmptyDatasetError, NotHfevolOutputError, PublishError, ReleaseExistsError
from hfevol.publish import list_releases, publish
from hfevol.publish.card import CardOptions, build_view, render_card, size_category
from hfevol.publish.release import default_local_dir
from hfevol.publish.source import read_source
from hfevol.publish.versions import check_version, version_key


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout


def test_local_release_is_a_git_folder_with_a_tag_per_version(tmp_path):
    import datasets

    a, b = make_output(tmp_path / "a", 6, tag="a"), make_output(tmp_path / "b", 9, tag="b", scores=False)
    release = tmp_path / "release"
    r1 = publish(a, version="v1", local_dir=release)
    r2 = publish(b, version="v1.1", local_dir=release)
    assert (r1.status, r2.status, r2.target) == ("published", "published", "local")
    assert _git(release, "tag", "--list").split() == ["v1", "v1.1"]
    assert _git(release, "rev-parse", "v1^{commit}").strip() == r1.commit
    assert datasets.load_dataset(str(release), split="train").to_list() == pq.read_table(b / "data/train.parquet").to_pylist()
    # v1.1 has no scores: its commit deleted v1's plots rather than keeping stale ones
    assert "plots/ic_ifd.png" in _git(release, "ls-tree", "-r", "--name-only", "v1").split()
    assert not (release / "plots").exists()
    assert [r.version for r in list_releases(release)] == ["v1", "v1.1"]
    assert _git(release, "show", "v1:hfevol_run.json") == (a / "hfevol_run.json").read_text()


def test_load_dataset_after_a_re_publish_reads_the_new_release(tmp_path):
    # datasets caches a local folder that lists configs by the listed paths, not by content:
    # release file names carry a content digest so that a second release is not served stale
    import datasets

    a, b = make_output(tmp_path / "a", 6, tag="a"), make_output(tmp_path / "b", 6, tag="b")  # same shape, other text
    release = tmp_path / "release"
    publish(a, version="v1", local_dir=release)
    assert datasets.load_dataset(str(release), split="train").to_list() == pq.read_table(a / "data/train.parquet").to_pylist()
    publish(b, version="v2", local_dir=release)
    assert datasets.load_dataset(str(release), split="train").to_list() == pq.read_table(b / "data/train.parquet").to_pylist()
    # another release folder of the same name elsewhere does not get these rows either
    other = tmp_path / "elsewhere" / "release"
    publish(a, version="v1", local_dir=other)
    assert datasets.load_dataset(str(other), split="train").to_list() == pq.read_table(a / "data/train.parquet").to_pylist()


def test_default_local_folder_sits_beside_the_output(tmp_path):
    out = make_output(tmp_path / "evolved")
    result = publish(out, version="v1")
    assert Path(result.location) == default_local_dir(out) == tmp_path / "evolved-release"


def test_local_refusals(tmp_path):
    out = make_output(tmp_path / "out")
    release = tmp_path / "release"
    publish(out, version="v1", local_dir=release)
    with pytest.raises(ReleaseExistsError):
        publish(make_output(tmp_path / "b", tag="b"), version="v1", local_dir=release)
    assert publish(out, version="v2", local_dir=release).status == "unchanged"
    (release / "README.md").write_text("edited by hand")
    with pytest.raises(PublishError, match="uncommitted changes"):
        publish(make_output(tmp_path / "c", tag="c"), version="v3", local_dir=release)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a release folder"):
        publish(out, version="v1", local_dir=tmp_path / "busy")
    with pytest.raises(ConfigError, match="Hub only"):
        publish(out, version="v1", local_dir=tmp_path / "x", private=True)
    with pytest.raises(ConfigError, match="inside the output folder"):
        publish(out, version="v1", local_dir=out / "release")


def test_input_folder_checks(tmp_path):
    with pytest.raises(DatasetNotFoundError):
        read_source(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotHfevolOutputError, match="hfevol_run.json"):
        read_source(tmp_path / "plain")
    (tmp_path / "plain" / "hfevol_run.json").write_text('{"stages": []}')
    with pytest.raises(NotHfevolOutputError, match="no parquet"):
        read_source(tmp_path / "plain")
    (tmp_path / "plain" / "hfevol_run.json").write_text("[1, 2]")
    with pytest.raises(NotHfevolOutputError, match="not an hfevol run record"):
        read_source(tmp_path / "plain")
    with pytest.raises(EmptyDatasetError, match="no rows"):
        read_source(make_output(tmp_path / "empty", 0))


def test_layouts_one_config_per_round(tmp_path):
    out = make_output(tmp_path / "out", 4, configs=["round_2", "round_10", "round_1"])
    source = read_source(out)
    assert list(source.configs) == ["round_1", "round_2", "round_10"] and source.default_config == "round_10"
    (out / "data" / "round_1" / "test-00000-of-00002.parquet").write_bytes((out / "data/round_1/train.parquet").read_bytes())
    (out / "data" / "round_1" / "test-00001-of-00002.parquet").write_bytes((out / "data/round_1/train.parquet").read_bytes())
    source = read_source(out)
    digest = hashlib.sha256((out / "data/round_1/train.parquet").read_bytes()).hexdigest()[:12]
    # named by content: the same bytes get the same digest, the shard numbers keep them apart
    assert [f.path_in_repo for f in source.configs["round_1"]["test"]] == [
        f"data/round_1/test-00000-of-00002-{digest}.parquet",
        f"data/round_1/test-00001-of-00002-{digest}.parquet",
    ]
    assert source.config_rows("round_1") == 12


@pytest.mark.parametrize("rows, expected", [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (250_000, "100K<n<1M"), (10**13, "n>1T")])
def test_size_category(rows, expected):
    assert size_category(rows) == expected


@pytest.mark.parametrize("good", ["v1", "v1.2", "1.2.0", "v2.0rc1", "1.0.post1", "1.2.0-rc.1", "1.0.0+build.5"])
def test_valid_versions(good):
    assert check_version(good) == good


@pytest.mark.parametrize("bad", ["", "latest", "v", "v1.", "1..2", "v 1", "main", "1.2.3/4", "-1", "v1.2.3.", None, 3])
def test_invalid_versions(bad):
    with pytest.raises(ConfigError, match="not a valid release version"):
        check_version(bad)


def test_versions_sort_by_value():
    assert sorted(["v10", "v2", "v1.5", "v2.0rc1"], key=version_key) == ["v1.5", "v2.0rc1", "v2", "v10"]


def test_card_metadata_and_sections_follow_the_data(tmp_path):
    from huggingface_hub import DatasetCard, DatasetCardData

    full = make_output(tmp_path / "full", 5, configs=["round_1", "round_2"], car=True)
    view = build_view(read_source(full), CardOptions(license="apache-2.0", language=["en", "fr"]), repo_id="lab/evolved", version="v3", earlier=["v1", "v2"])
    assert [(p.config, p.column, p.path) for p in view.plots] == [(c, col, f"plots/{c}/{col}.png") for c in ("round_1", "round_2") for col in ("ic_ifd", "ifd")]
    card = render_card(view)
    assert validate_card_yaml(str(card)) == []
    data = DatasetCard(str(card)).data
    assert isinstance(data, DatasetCardData)
    assert (data.license, data.language, data.size_categories, data.pretty_name) == ("apache-2.0", ["en", "fr"], ["n<1K"], "evolved")
    assert [c["config_name"] for c in data.configs] == ["round_1", "round_2"] and data.configs[1]["default"] is True
    body = card.text
    for heading in (
        "## How the data was made",
        "## Kept and eliminated rows",
        "## Scores",
        "## Compatibility-adjusted reward (CAR)",
        "## Examples",
        "## Citation",
    ):
        assert heading in body, heading
    assert 'load_dataset("lab/evolved", "round_1", revision="v3")' in body
    assert "| `round_2` | `evol_status` | failed | 2 |" in body  # rows 0 and 3 of 5 failed
    assert "| `round_1` | `ic_ifd` | 5 | 0.2700 |" in body  # mean of 0.25..0.29
    assert "![Distribution of ic_ifd in round_1](plots/round_1/ic_ifd.png)" in body and "![Distribution of ifd in round_2](plots/round_2/ifd.png)" in body
    assert "@article{hui2024smaller," in body and "arXiv:2412.11231" in body
    assert "@article{xu2024stronger," in body and "arXiv:2411.07133" in body

    bare = make_output(tmp_path / "bare", 3, scores=False)
    body = render_card(build_view(read_source(bare), CardOptions(), repo_id=None, version="v1", earlier=[])).text
    assert "## Scores" not in body and "## Compatibility-adjusted reward" not in body and "![" not in body
    assert 'load_dataset("path/to/this/folder")' in body and "revision=" not in body.split("## How the data was made")[0]


def test_streamed_file_ids_match_git_and_sha256(tmp_path):
    from hfevol.publish.target import file_blob_id, file_sha256

    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * 9000)  # over two read blocks
    assert file_blob_id(path) == subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_commit_holding_files_that_were_not_sent_is_not_tagged(tmp_path, monkeypatch):
    import hfevol.publish.git as plumbing
    from hfevol.errors import UploadError

    a, b = make_output(tmp_path / "a", tag="a"), make_output(tmp_path / "b", tag="b")
    release = tmp_path / "release"
    publish(a, version="v1", local_dir=release)
    v1_readme = (release / "README.md").read_text()
    real = plumbing.build_commit
    intruder = make_output(tmp_path / "other", 3, tag="other") / "data/train.parquet"

    def with_another_runs_file(folder, files, delete, message, parent):  # what a second publish could slip in
        return real(folder, {**files, "data/train-0123456789ab.parquet": intruder}, delete, message, parent)

    monkeypatch.setattr(plumbing, "build_commit", with_another_runs_file)
    with pytest.raises(UploadError, match=r"data/train-0123456789ab.parquet \(not sent\).*not tagged"):
        publish(b, version="v2", local_dir=release)
    assert _git(release, "tag", "--list").split() == ["v1"]
    assert (release / "README.md").read_text() == v1_readme  # the folder still shows v1
    monkeypatch.undo()
    again = publish(b, version="v2", local_dir=release)  # the same call, without the intruder
    assert again.status == "published"
    assert "data/train-0123456789ab.parquet" not in _git(release, "ls-tree", "-r", "--name-only", "v2").split()


def test_edits_in_the_release_folder_are_refused_with_a_hint_that_clears_them(tmp_path):
    import shlex

    release = tmp_path / "release"
    publish(make_output(tmp_path / "a", tag="a"), version="v1", local_dir=release)
    (release / "README.md").write_text("edited by hand")
    (release / "data" / "mine.parquet").write_bytes(b"not released")
    b = make_output(tmp_path / "b", tag="b")
    with pytest.raises(PublishError, match="uncommitted changes") as info:
        publish(b, version="v2", local_dir=release)
    command = info.value.hint.split("`")[1]
    subprocess.run(shlex.split(command), check=True, capture_output=True)
    assert publish(b, version="v2", local_dir=release).status == "published"


def _printed_load(printed: str, version: str) -> tuple[str, list[str]]:
    """The shell line and the ``ds = ...`` Python lines that `hfevol publish` printed to load ``version``."""
    block = printed.split(f"load {version} ", 1)[1].splitlines()[1:]
    setup = block[0].strip()
    return setup, [line.strip().removeprefix("ds = ") for line in block[2:] if line.strip().startswith("ds = ")]


def test_the_printed_load_hint_and_the_card_load_every_config_of_that_version_after_later_releases(tmp_path, capsys):
    import shlex

    import datasets

    from hfevol.cli import main

    a = make_output(tmp_path / "a", 4, configs=["round_1", "round_2"], tag="a")
    (a / "data/round_2/train.parquet").write_bytes((make_output(tmp_path / "x", 3, tag="x") / "data/train.parquet").read_bytes())
    expected = [pq.read_table(a / f"data/{c}/train.parquet").to_pylist() for c in ("round_1", "round_2")]
    release = tmp_path / "release"
    assert main(["publish", str(a), "--version", "v1", "--local-dir", str(release)]) == 0
    setup, lines = _printed_load(capsys.readouterr().out, "v1")
    assert len(lines) == 2  # one per round, not only the last one
    publish(make_output(tmp_path / "b", 5, tag="b"), version="v2", local_dir=release)
    # revision= does not select a version of a local folder (the reason for the checkout line)
    assert datasets.load_dataset(str(release), revision="v1", split="train").num_rows == 5

    subprocess.run(shlex.split(setup), check=True, capture_output=True)
    loaded = [eval(line, {"load_dataset": datasets.load_dataset}) for line in lines]  # noqa: S307 - the printed code itself
    assert [ds["train"].to_list() for ds in loaded] == expected

    card = _git(release, "show", "v1:README.md")
    for tag in ("v1", "v2"):  # nothing published holds a local path
        assert subprocess.run(["git", "-C", str(release), "grep", "-q", str(tmp_path), tag]).returncode == 1
    shell = [line for line in card.splitlines() if "worktree add" in line]
    assert len(shell) == 1 and str(tmp_path) not in card
    mine = str(tmp_path / "from-card")
    shell_line = shell[0].replace("path/to/this/folder-v1", mine).replace("path/to/this/folder", str(release))
    subprocess.run(shlex.split(shell_line), check=True, capture_output=True)
    card_lines = [
        line.removeprefix("ds = ").replace("path/to/this/folder-v1", mine)
        for line in card.splitlines()
        if line.startswith('ds = load_dataset("path/to/this/folder-v1"')
    ]
    assert [eval(line, {"load_dataset": datasets.load_dataset})["train"].to_list() for line in card_lines] == expected  # noqa: S307


def test_changes_staged_by_hand_are_refused_and_kept(tmp_path):
    out = make_output(tmp_path / "a", tag="a")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    _git(fresh, "init", "-q", "-b", "main")
    (fresh / "notes.txt").write_text("mine")
    _git(fresh, "add", "notes.txt")
    with pytest.raises(PublishError, match="staged changes that are not a release"):
        publish(out, version="v1", local_dir=fresh)
    release = tmp_path / "release"
    publish(out, version="v1", local_dir=release)
    (release / "notes.txt").write_text("mine")
    _git(release, "add", "notes.txt")
    with pytest.raises(PublishError, match="staged changes that are not a release"):
        publish(make_output(tmp_path / "b", tag="b"), version="v2", local_dir=release)
    assert (fresh / "notes.txt").read_text() == (release / "notes.txt").read_text() == "mine"
