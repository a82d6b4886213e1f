"""Making a release: ``publish``, ``publish_from`` and ``list_releases``."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ConfigError, PublishError, ReleaseExistsError, UploadError
from ..extras import available
from ..locks import exclusive_lock
from .card import CardOptions, build_view, render_card
from .git import pause
from .hub import HubTarget, hub_token, known_token
from .local import LocalTarget, export_version, is_release_folder
from .source import ReleaseSource, read_source, release_configs
from .target import Release, Target
from .versions import check_repo_id, check_version

logger = logging.getLogger(__name__)

Status = Literal["published", "unchanged", "pull_request"]


@dataclass(frozen=True)
class PublishResult:
    """What a publish did: ``published`` (a commit, or an untagged identical one, got the tag),
    ``unchanged`` (the content equals a release already made: nothing written) or
    ``pull_request`` (a PR was opened; nothing tagged yet)."""

    target: Literal["hub", "local"]
    location: str
    """The repo id or the local folder."""
    version: str
    status: Status
    commit: str
    tag: str | None
    files: tuple[str, ...]
    load: tuple[str, ...]
    """Python expressions that load this version, one per config (``load_dataset(...)``)."""
    load_setup: str | None = None
    """A shell command to run before them: for a local folder, it checks the version out in a
    folder of its own (``load_dataset`` ignores ``revision`` for a local folder)."""
    pr_url: str | None = None
    private: bool | None = None
    note: str = ""


def default_local_dir(folder: str | Path) -> Path:
    """Where ``publish`` writes a local release of ``folder``: ``<folder>-release`` beside it."""
    root = Path(folder).expanduser().resolve()
    return root.with_name(f"{root.name}-release")


def publish(
    folder: str | Path,
    repo_id: str | None = None,
    *,
    version: str,
    private: bool = False,
    create_pr: bool = False,
    force: bool = False,
    target: Literal["auto", "hub", "local"] = "auto",
    local_dir: str | Path | None = None,
    branch: str = "main",
    message: str | None = None,
    card: CardOptions | None = None,
) -> PublishResult:
    """Publish the hfevol output ``folder`` as release ``version``.

    The target is the Hub repo ``repo_id`` when one is given (``target="auto"``) and no
    ``local_dir``; otherwise a local git folder (``local_dir``, default ``<folder>-release``),
    whose card then names ``repo_id`` as the dataset's future Hub id.

    Guarantees:

    - **One consistent revision.** Data, card (``README.md``), configuration file
      (``hfevol_run.json``), CAR table and plots go in ONE commit on ``branch``; files of
      an earlier release that this one lacks are deleted in that same commit.
    - **No tag on a partial commit.** The tag is created only after the commit call has
      returned its commit id, and after the whole tree at that id has been read back and
      compared with what was sent (exactly those files, :data:`target.KEEP` files aside); it
      names that id, not the branch. A Hub commit is
      atomic (one request), so a failure before it leaves the branch as it was, and a
      failure after it (an answer lost) leaves an untagged commit that the retry finds
      identical and tags.
    - **No empty release.** When the branch already holds the same data and configuration
      and that commit already carries a release, nothing is written (``status="unchanged"``).
    - **Existing versions are kept.** A version that exists is refused unless ``force``
      (which moves the tag; the old commit stays in the history). On the Hub a move is a
      delete then a create: if the create fails the version is missing, and the same call
      tags the commit already made.
    - **Private stays private.** ``private=True`` creates a private repo or turns a public
      one private; nothing ever makes a repo public.
    - **Tokens.** The Hub token comes only from ``HF_TOKEN`` or ``hf auth login``; it is never
      written, logged or put in an error, and a release whose files contain it is refused, on
      the Hub and in a local folder alike (whenever a token is set).
    - **One publish per release folder.** A local publish holds the folder's lock
      (:func:`hfevol.locks.exclusive_lock`) from start to end; a second one stops with
      LockedError naming the first. Its commit is built from git objects and the working tree
      is moved to it only once it is tagged, so a publish killed at any point leaves the
      previous release checked out, and the same command run again completes the release.
    - **A re-run is harmless.** When ``version`` already names the branch's commit and that
      commit holds this content, nothing is written (``status="unchanged"``).

    Raises:
        ConfigError: a bad version, repo id, target or option combination.
        DatasetNotFoundError, NotHfevolOutputError, EmptyDatasetError: ``folder`` cannot be published.
        MissingTokenError: the Hub target and no token.
        ReleaseExistsError: ``version`` exists and not ``force``.
        UploadError: the Hub failed or the connection dropped; nothing was tagged.
        LockedError: another command holds the local release folder.
        PublishError: any other failure of the target (a rejected token, git).
    """
    version = check_version(version)
    if target not in ("auto", "hub", "local"):
        raise ConfigError(f"target={target!r} must be 'auto', 'hub' or 'local'")
    kind = "hub" if target == "hub" or (target == "auto" and repo_id and local_dir is None) else "local"
    if repo_id is not None or kind == "hub":
        if repo_id is None:
            raise ConfigError("the Hub target needs a repo id", hint="pass repo_id='user/name' (--repo).")
        check_repo_id(repo_id)
    if kind == "local" and (private or create_pr):
        raise ConfigError("--private and --create-pr apply to the Hub only", hint="give --repo (and no --local-dir) to publish to the Hub.")
    source = read_source(folder)
    dest: Target
    if kind == "hub":
        dest = HubTarget(repo_id, branch=branch, private=private)  # type: ignore[arg-type]
    else:
        if branch != "main":
            raise ConfigError("a local release folder has one branch, main", hint="leave out --branch.")
        where = Path(local_dir).expanduser().resolve() if local_dir is not None else default_local_dir(folder)
        if where == source.folder or source.folder in where.parents:
            raise ConfigError(f"the release folder {where} must not be inside the output folder {source.folder}")
        dest = LocalTarget(where)
        with exclusive_lock(where, what="the release folder"):
            pause("locked")
            return _prepare_and_release(dest, source, repo_id, version, message, force=force, create_pr=False, options=card)
    return _prepare_and_release(dest, source, repo_id, version, message, force=force, create_pr=create_pr, options=card)


def _prepare_and_release(dest: Target, source: ReleaseSource, repo_id: str | None, version: str, message: str | None, *,
                         force: bool, create_pr: bool, options: CardOptions | None) -> PublishResult:  # fmt: skip
    dest.prepare()
    releases = dest.releases()
    with tempfile.TemporaryDirectory(prefix="hfevol-release-") as tmp:
        earlier = [r.version for r in releases if r.version != version]
        files = _stage(source, Path(tmp), repo_id=repo_id, version=version, earlier=earlier, options=options or CardOptions(), local=dest.kind == "local")
        return _release(dest, files, version, message or f"Release {version}", force=force, create_pr=create_pr, releases=releases)


def publish_from(
    release_folder: str | Path,
    repo_id: str,
    *,
    version: str,
    private: bool = False,
    create_pr: bool = False,
    force: bool = False,
    branch: str = "main",
    message: str | None = None,
) -> PublishResult:
    """Push release ``version`` of a local release folder to the Hub, byte for byte (card included).

    Same guarantees and errors as :func:`publish`; also PublishError when the folder has no
    such version.
    """
    version = check_version(version)
    check_repo_id(repo_id)
    hub_token()
    with tempfile.TemporaryDirectory(prefix="hfevol-release-") as tmp:
        files = export_version(release_folder, version, Path(tmp))
        _refuse_token(files)  # before the Hub is contacted at all
        dest = HubTarget(repo_id, branch=branch, private=private)
        dest.prepare()
        releases = dest.releases()
        return _release(dest, files, version, message or f"Release {version}", force=force, create_pr=create_pr, releases=releases)


def list_releases(where: str | Path) -> list[Release]:
    """The releases of a local release folder (a path) or of a Hub dataset (``user/name``), oldest first."""
    path = Path(where).expanduser()
    if path.exists():
        if not is_release_folder(path):
            raise ConfigError(f"{path} is not a local release folder (no .git)")
        return LocalTarget(path).releases()
    check_repo_id(str(where))
    return HubTarget(str(where), token_required=False).releases()


def _check_new(releases: list[Release], version: str, force: bool, location: str) -> None:
    existing = {r.version: r for r in releases}
    if version in existing and not force:
        raise ReleaseExistsError(
            f"{location} already has release {version} (commit {existing[version].commit[:12]})",
            hint="choose a new version, or pass --force to move the tag to the new content.",
        )


def _stage(source: ReleaseSource, tmp: Path, *, repo_id: str | None, version: str, earlier: list[str], options: CardOptions, local: bool) -> dict[str, Path]:
    """The release's files: the payload as it is, plus the plots and the card written to ``tmp``."""
    from ..scoring.plot import histogram_png

    files = source.payload()
    view = build_view(source, options, repo_id=repo_id, version=version, earlier=earlier, local=local)
    drawn = []
    for plot in view.plots if available("plots") else ():  # every config with scores; without matplotlib, a card without plots
        title = f"Distribution of {plot.column} ({len(plot.values)} rows{f', {plot.config}' if plot.config else ''})"
        png = histogram_png(list(plot.values), tmp / plot.path, label=plot.column, title=title)
        if png is not None:
            files[plot.path] = png
            drawn.append(plot)
    autoif = view.autoif
    if autoif is not None and autoif.pass_rates and available("plots"):
        from ..autoif.card import PLOT_PATH

        title = f"AutoIF pass rate per answer ({len(autoif.pass_rates)} rows)"
        png = histogram_png(list(autoif.pass_rates), tmp / PLOT_PATH, label="pass rate (share of kept functions passed)", title=title, bins=10, span=(0.0, 1.0))
        if png is not None:
            files[PLOT_PATH] = png
            autoif = dataclasses.replace(autoif, plot=PLOT_PATH)
    card = render_card(dataclasses.replace(view, plots=drawn, autoif=autoif))
    readme = tmp / "README.md"
    readme.write_text(str(card), encoding="utf-8")
    files["README.md"] = readme
    return files


def _refuse_token(files: dict[str, Path]) -> None:
    """Refuse to release a file that contains the Hub token, to the Hub or to a local folder
    (without ever printing the token). The one check every publish path goes through."""
    token = known_token()
    if token is None:
        return
    needle = token.encode()
    for path, local in files.items():
        if needle in local.read_bytes():
            raise PublishError(f"{path} contains your Hub token; refusing to publish it", hint="remove the token from that file and run again.")


def _release(dest: Target, files: dict[str, Path], version: str, message: str, *, force: bool, create_pr: bool, releases: list[Release]) -> PublishResult:
    def result(status: Status, commit: str, *, tag: str | None = None, pr_url: str | None = None, note: str = "") -> PublishResult:
        if status != "pull_request":
            dest.show(commit)
        setup, load = dest.load_hint(version, release_configs(files))
        return PublishResult(
            target=dest.kind, location=dest.location, version=version, status=status, commit=commit, tag=tag,  # type: ignore[arg-type]
            files=tuple(sorted(files)), load=load, load_setup=setup, pr_url=pr_url, private=dest.private, note=note,
        )  # fmt: skip

    _refuse_token(files)
    head = dest.head()
    same = head is not None and head.same_payload(files)
    if same and not force and any(r.version == version and r.commit == head.commit for r in releases):  # type: ignore[union-attr]
        return result("unchanged", head.commit, note=f"release {version} already holds this content; nothing was written.")  # type: ignore[union-attr]
    _check_new(releases, version, force, dest.location)
    commit = None
    if head is not None and same:
        tagged = [r.version for r in releases if r.commit == head.commit]
        if not force and (tagged or create_pr):
            where = f"release {tagged[-1]}" if tagged else "the branch"
            return result(
                "unchanged", head.commit, note=f"the data and configuration equal {where}; no commit and no tag were made (--force tags them anyway)."
            )
        if not create_pr:
            # the same content, committed but never tagged (a merged PR, a lost answer, a --force
            # whose tag creation failed), or --force for the content already there: no second commit
            commit = head.commit
            logger.info("the branch already holds this content at %s; tagging it", commit)
    if commit is None:
        commit, pr_url = dest.commit(files, head.stale(files) if head else [], message, create_pr=create_pr)
        if pr_url is not None:
            return result(
                "pull_request",
                commit,
                pr_url=pr_url,
                note="nothing was tagged: once the pull request is merged, run the same command without --create-pr to tag the merged commit.",
            )
        wrong = dest.files_at(commit).check_commit(files)
        if wrong:
            raise UploadError(
                f"commit {commit[:12]} does not hold the release as sent ({', '.join(wrong)}); it was not tagged", hint="run the same command again."
            )
    dest.tag(version, commit, message, replace=any(r.version == version for r in releases))
    return result("published", commit, tag=version)
