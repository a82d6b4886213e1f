"""Releases to the test Hub, driven through the real huggingface_hub and datasets clients."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from _publish_helpers import TOKEN, hub, make_output  # noqa: F401 - hub is a fixture

from hfevol.errors import MissingTokenError, PublishError, ReleaseExistsError, UploadError
from hfevol.publish import list_releases, publish, publish_from

pytestmark = pytest.mark.integration
REPO = "alice/evolved"


def _load(revision: str, config: str | None = None):
    import datasets

    return datasets.load_dataset(REPO, config, revision=revision, split="train")


def _rows(folder: Path, config: str = "") -> list[dict]:
    return pq.read_table(folder / "data" / config / "train.parquet").to_pylist()


def test_two_versions_load_back_by_tag_with_card_and_config(hub, tmp_path):
    from huggingface_hub import DatasetCard, hf_hub_download

    v1 = make_output(tmp_path / "v1", 6, tag="first")
    v2 = make_output(tmp_path / "v2", 9, tag="second", car=True)
    r1 = publish(v1, REPO, version="v1")
    r2 = publish(v2, REPO, version="v2")
    assert (r1.status, r2.status) == ("published", "published")
    assert r1.commit != r2.commit
    assert hub.repo(REPO).tags == {"v1": r1.commit, "v2": r2.commit}

    for result, folder in ((r1, v1), (r2, v2)):
        assert _load(result.version).to_list() == _rows(folder)
        card = DatasetCard(Path(hf_hub_download(REPO, "README.md", repo_type="dataset", revision=result.version)).read_text())
        assert card.data.size_categories == ["n<1K"]
        digest = hashlib.sha256((folder / "data/train.parquet").read_bytes()).hexdigest()[:12]
        assert card.data.configs == [{"config_name": "default", "data_files": [{"split": "train", "path": f"data/train-{digest}.parquet"}]}]
        assert f"release **{result.version}**" in card.text
        assert f'load_dataset("{REPO}", revision="{result.version}")' in card.text
        config = Path(hf_hub_download(REPO, "hfevol_run.json", repo_type="dataset", revision=result.version))
        assert config.read_bytes() == (folder / "hfevol_run.json").read_bytes()
    card_v2 = hub.file_at(REPO, "v2", "README.md").decode()
    assert "earlier releases: `v1`" in card_v2 and "## Compatibility-adjusted reward (CAR)" in card_v2
    assert "| model-b | 0.55 | 0.90 | 0.47 |" in card_v2
    assert "car.csv" not in hub.repo(REPO).commits[r1.commit].files and "car.csv" in hub.repo(REPO).commits[r2.commit].files
    assert _load("main").to_list() == _rows(v2)
    assert [(r.version, r.commit) for r in list_releases(REPO)] == [("v1", r1.commit), ("v2", r2.commit)]


def test_multi_round_configs_load_by_name(hub, tmp_path):
    out = make_output(tmp_path / "out", 4, configs=["round_1", "round_2"])
    publish(out, REPO, version="1.0.0")
    assert _load("1.0.0", "round_1").to_list() == _rows(out, "round_1")
    import datasets

    assert datasets.load_dataset(REPO, revision="1.0.0", split="train").num_rows == 4  # the default config: round_2


def test_same_content_makes_no_empty_release(hub, tmp_path):
    out = make_output(tmp_path / "out")
    first = publish(out, REPO, version="v1")
    commits = len(hub.repo(REPO).commits)
    again = publish(out, REPO, version="v2")
    assert again.status == "unchanged" and again.tag is None and again.commit == first.commit
    assert len(hub.repo(REPO).commits) == commits
    assert set(hub.repo(REPO).tags) == {"v1"}


def test_existing_version_is_refused_and_force_moves_it(hub, tmp_path):
    first = publish(make_output(tmp_path / "a", tag="a"), REPO, version="v1")
    with pytest.raises(ReleaseExistsError, match="already has release v1"):
        publish(make_output(tmp_path / "b", tag="b"), REPO, version="v1")
    assert hub.repo(REPO).tags["v1"] == first.commit
    moved = publish(tmp_path / "b", REPO, version="v1", force=True)
    assert moved.status == "published" and moved.commit != first.commit
    assert hub.repo(REPO).tags["v1"] == moved.commit
    assert _load("v1").to_list() == _rows(tmp_path / "b")


def test_private_repo_stays_private_on_republish(hub, tmp_path):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    result = publish(make_output(tmp_path / "a", tag="a"), REPO, version="v1", private=True)
    assert result.private is True and hub.repo(REPO).private
    publish(make_output(tmp_path / "b", tag="b"), REPO, version="v2")  # no --private this time
    assert hub.repo(REPO).private
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=False).dataset_info(REPO)
    assert HfApi().dataset_info(REPO).private is True


def test_private_flag_turns_a_public_repo_private(hub, tmp_path):
    publish(make_output(tmp_path / "a", tag="a"), REPO, version="v1")
    assert not hub.repo(REPO).private
    publish(make_output(tmp_path / "b", tag="b"), REPO, version="v2", private=True)
    assert hub.repo(REPO).private


def test_create_pr_opens_a_pr_ref_and_leaves_the_branch(hub, tmp_path):
    first = publish(make_output(tmp_path / "a", tag="a"), REPO, version="v1")
    proposal = publish(make_output(tmp_path / "b", tag="b"), REPO, version="v2", create_pr=True)
    repo = hub.repo(REPO)
    assert proposal.status == "pull_request" and proposal.tag is None
    assert proposal.pr_url.endswith("/discussions/1")
    assert repo.branches["main"] == first.commit and repo.pull_requests == {1: proposal.commit}
    assert "v2" not in repo.tags
    assert _load("refs/pr/1").to_list() == _rows(tmp_path / "b")
    assert "README.md" in repo.commits[proposal.commit].files  # the card travels with the data


def test_network_failure_mid_commit_tags_nothing_and_a_retry_succeeds(hub, tmp_path):
    first = publish(make_output(tmp_path / "a", tag="a"), REPO, version="v1")
    out = make_output(tmp_path / "b", tag="b")
    hub.fail_next("commit")
    with pytest.raises(UploadError, match="uploading the release failed") as info:
        publish(out, REPO, version="v2")
    assert "run the same command again" in str(info.value)
    repo = hub.repo(REPO)
    assert repo.tags == {"v1": first.commit} and repo.branches["main"] == first.commit
    retry = publish(out, REPO, version="v2")
    assert retry.status == "published" and hub.repo(REPO).tags["v2"] == retry.commit
    assert _load("v2").to_list() == _rows(out)


def test_lost_commit_answer_is_tagged_by_the_retry_without_a_second_commit(hub, tmp_path):
    out = make_output(tmp_path / "a")
    hub.fail_next("commit", after_apply=True)
    with pytest.raises(UploadError):
        publish(out, REPO, version="v1")
    repo = hub.repo(REPO)
    assert repo.tags == {}
    applied = repo.branches["main"]
    retry = publish(out, REPO, version="v1")
    assert retry.commit == applied and hub.repo(REPO).tags == {"v1": applied}


def test_failed_tag_call_leaves_no_tag_and_retry_tags(hub, tmp_path):
    out = make_output(tmp_path / "a")
    hub.fail_next("tag")
    with pytest.raises(UploadError, match="tagging the release failed"):
        publish(out, REPO, version="v1")
    assert hub.repo(REPO).tags == {}
    assert publish(out, REPO, version="v1").tag == "v1"


def test_force_whose_tag_creation_fails_is_finished_by_the_same_command(hub, tmp_path):
    # the Hub cannot move a tag: --force deletes it, then creates it; a failure in between
    # leaves the version missing, never pointing at the wrong data
    publish(make_output(tmp_path / "a", tag="a"), REPO, version="v1")
    out = make_output(tmp_path / "b", tag="b")
    hub.fail_next("tag")
    with pytest.raises(UploadError, match="the old v1 tag was already removed"):
        publish(out, REPO, version="v1", force=True)
    repo = hub.repo(REPO)
    assert "v1" not in repo.tags
    commits = len(repo.commits)
    again = publish(out, REPO, version="v1", force=True)
    assert again.status == "published" and len(hub.repo(REPO).commits) == commits  # no second commit
    assert hub.repo(REPO).tags["v1"] == again.commit == hub.repo(REPO).branches["main"]
    assert _load("v1").to_list() == _rows(out)


def test_missing_token_fails_before_any_request(hub, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(MissingTokenError, match="needs a token"):
        publish(make_output(tmp_path / "a"), REPO, version="v1")
    assert hub.requests == []


def test_rejected_token_is_a_clear_error_and_writes_nothing(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_known_token")
    with pytest.raises(PublishError, match="checking the Hub token failed") as info:
        publish(make_output(tmp_path / "a"), REPO, version="v1")
    assert "hf_not_a_known_token" not in str(info.value)
    assert [m for m, _, _ in hub.requests] == ["GET"]


def test_bad_inputs_fail_before_any_request(hub, tmp_path):
    from hfevol.errors import ConfigError, EmptyDatasetError, NotHfevolOutputError

    out = make_output(tmp_path / "ok")
    with pytest.raises(ConfigError, match="repo id"):
        publish(out, "not a repo/x y", version="v1")
    with pytest.raises(ConfigError, match="version"):
        publish(out, REPO, version="latest")
    (tmp_path / "plain" / "data").mkdir(parents=True)
    with pytest.raises(NotHfevolOutputError, match="hfevol_run.json"):
        publish(tmp_path / "plain", REPO, version="v1")
    with pytest.raises(EmptyDatasetError, match="no rows"):
        publish(make_output(tmp_path / "empty", 0), REPO, version="v1")
    assert hub.requests == []


def test_publish_from_local_pushes_a_version_unchanged(hub, tmp_path):
    import subprocess

    release_dir = tmp_path / "release"
    publish(make_output(tmp_path / "a", tag="a"), version="v1", local_dir=release_dir, repo_id=REPO)
    publish(make_output(tmp_path / "b", tag="b"), version="v2", local_dir=release_dir, repo_id=REPO)
    result = publish_from(release_dir, REPO, version="v1")
    assert result.status == "published" and result.tag == "v1"
    names = subprocess.run(["git", "-C", str(release_dir), "ls-tree", "-r", "--name-only", "v1"], capture_output=True, text=True, check=True).stdout.split()
    for name in names:
        local = subprocess.run(["git", "-C", str(release_dir), "show", f"v1:{name}"], capture_output=True, check=True).stdout
        assert hub.file_at(REPO, "v1", name) == local, name
    assert _load("v1").to_list() == _rows(tmp_path / "a")


def test_card_passes_the_hub_metadata_validation(hub, tmp_path):
    from huggingface_hub import DatasetCard, DatasetCardData

    publish(make_output(tmp_path / "a", car=True), REPO, version="v1")
    card = DatasetCard(hub.file_at(REPO, "v1", "README.md").decode())
    card.validate(repo_type="dataset")  # POST /api/validate-yaml on the test Hub
    assert isinstance(card.data, DatasetCardData) and card.data.license == "unknown"
    broken = DatasetCard(str(card).replace("- n<1K", "- tiny"))
    with pytest.raises(ValueError, match="size_categories"):
        broken.validate(repo_type="dataset")


def test_cli_publish_and_releases(hub, tmp_path, capsys):
    from hfevol.cli import main

    out = make_output(tmp_path / "a")
    assert main(["publish", str(out), "--repo", REPO, "--version", "v1", "--message", "first release"]) == 0
    printed = capsys.readouterr().out
    assert "publish v1 to Hub dataset alice/evolved: published" in printed
    assert f'load_dataset("{REPO}", revision="v1")' in printed
    assert main(["publish", str(out), "--repo", REPO, "--version", "v1"]) == 0  # the same command again: nothing to do
    assert "publish v1 to Hub dataset alice/evolved: unchanged" in capsys.readouterr().out
    assert main(["publish", str(make_output(tmp_path / "b", tag="b")), "--repo", REPO, "--version", "v1"]) == 2
    assert "already has release v1" in capsys.readouterr().err
    assert main(["releases", REPO]) == 0
    assert "v1" in capsys.readouterr().out
    assert hub.repo(REPO).commits[hub.repo(REPO).tags["v1"]].title == "first release"
    assert json.loads(hub.file_at(REPO, "v1", "hfevol_run.json"))["source"] == "builtin"
