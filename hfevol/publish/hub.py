"""The Hub target: every call to the Hub that a release makes, through ``huggingface_hub``.

A release is ONE ``create_commit`` on the branch (data, card, configuration file and plots
together, stale files deleted), then ``create_tag`` at the commit id it returned. The card
never travels separately, so it cannot land on another branch than the data.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MissingTokenError, PublishError, UploadError
from .target import Head, Release, RemoteFile, Target, load_lines
from .versions import version_key

if TYPE_CHECKING:
    from huggingface_hub import HfApi

logger = logging.getLogger(__name__)
_RETRY_HINT = "nothing was tagged; run the same command again to retry (files already uploaded are not sent twice)."


def hub_token() -> str:
    """The token from ``HF_TOKEN`` or the ``hf auth login`` store.

    Raises:
        MissingTokenError: there is none.
    """
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise MissingTokenError(
            "publishing to the Hub needs a token, and none is set",
            hint="set HF_TOKEN or run `hf auth login` (or publish locally: leave out --repo).",
        )
    return token


def known_token() -> str | None:
    """The token from ``HF_TOKEN`` or the ``hf auth login`` store, or None: what a release must never contain."""
    from huggingface_hub import get_token

    return get_token() or None


def _fail(action: str, exc: Exception, cls: type[PublishError] = UploadError, hint: str | None = _RETRY_HINT) -> PublishError:
    """A one-line error for a failed Hub call; the server's message, never the request headers."""
    detail = " ".join(str(exc).split())[:300] or type(exc).__name__
    return cls(f"{action} failed: {type(exc).__name__}: {detail}", hint=hint)


def _is_network_error(exc: Exception) -> bool:
    """A dropped connection or time-out (the HTTP client's own classes), an OS-level error, or
    ``huggingface_hub``'s wrapping of one (``RuntimeError``/``ValueError`` around an LFS upload)."""
    return isinstance(exc, (OSError, RuntimeError, ValueError)) or type(exc).__module__.split(".")[0] in ("httpx", "httpx2")


class HubTarget(Target):
    """Releases in the Hub dataset repo ``repo_id``, on ``branch``."""

    kind = "hub"

    def __init__(self, repo_id: str, *, branch: str = "main", private: bool = False, token_required: bool = True) -> None:
        from huggingface_hub import HfApi, get_token

        self.repo_id = repo_id
        self.branch = branch
        self.private_requested = private
        self.location = repo_id
        self.api: HfApi = HfApi(token=hub_token() if token_required else get_token())

    def _call(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one ``HfApi`` call; any failure (HTTP status, dropped connection) becomes a PublishError."""
        from huggingface_hub.errors import HfHubHTTPError

        try:
            return fn(*args, repo_type="dataset", **kwargs)
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in (401, 403):
                raise _fail(action, exc, PublishError, "check that HF_TOKEN (or your login) is valid and may write to this repo.") from exc
            raise _fail(action, exc) from exc
        except Exception as exc:
            if _is_network_error(exc):
                raise _fail(action, exc) from exc
            raise

    def prepare(self) -> None:
        """Check the token, create the repo if needed, and keep a private repo private."""
        from huggingface_hub.errors import HfHubHTTPError

        try:
            self.api.whoami()
        except HfHubHTTPError as exc:
            raise _fail("checking the Hub token", exc, PublishError, "set HF_TOKEN to a valid token with write access.") from exc
        except Exception as exc:
            if not _is_network_error(exc):
                raise
            raise _fail("reaching the Hub", exc, PublishError, "check HF_ENDPOINT and the network.") from exc
        self._call("creating the repo", self.api.create_repo, self.repo_id, private=True if self.private_requested else None, exist_ok=True)
        info = self._call("reading the repo", self.api.repo_info, self.repo_id)
        self.private = bool(info.private)
        if self.private_requested and not self.private:
            # Only ever towards private: a re-publish never makes a private repo public.
            self._call("making the repo private", self.api.update_repo_settings, self.repo_id, private=True)
            self.private = True

    def releases(self) -> list[Release]:
        refs = self._call("listing tags", self.api.list_repo_refs, self.repo_id)
        return sorted((Release(t.name, t.target_commit) for t in refs.tags), key=lambda r: version_key(r.version))

    def _tree(self, revision: str) -> Head:
        from huggingface_hub.hf_api import RepoFile

        entries = self._call("listing files", self.api.list_repo_tree, self.repo_id, revision=revision, recursive=True)
        files = {e.path: RemoteFile(e.blob_id, e.lfs.sha256 if e.lfs else None) for e in entries if isinstance(e, RepoFile)}
        info = self._call("reading the revision", self.api.repo_info, self.repo_id, revision=revision)
        return Head(info.sha, files)

    def head(self) -> Head | None:
        refs = self._call("listing branches", self.api.list_repo_refs, self.repo_id)
        if self.branch not in {b.name for b in refs.branches}:
            return None
        return self._tree(self.branch)

    def files_at(self, commit: str) -> Head:
        return self._tree(commit)

    def commit(self, files: dict[str, Path], delete: list[str], message: str, *, create_pr: bool) -> tuple[str, str | None]:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        if self.head() is None:
            self._call("creating the branch", self.api.create_branch, self.repo_id, branch=self.branch, exist_ok=True)
        operations: list[Any] = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(f)) for p, f in sorted(files.items())]
        operations += [CommitOperationDelete(path_in_repo=p) for p in delete]
        info = self._call("uploading the release", self.api.create_commit, self.repo_id, operations=operations,
                          commit_message=message, revision=self.branch, create_pr=create_pr)  # fmt: skip
        return info.oid, info.pr_url

    def tag(self, version: str, commit: str, message: str, *, replace: bool) -> None:
        # The Hub cannot move a tag: it is deleted, then created. Should the creation fail, the
        # version is missing (never wrong), and the same command with --force tags the commit.
        if replace:
            self._call("removing the old tag", self.api.delete_tag, self.repo_id, tag=version)
        action = f"tagging the release (the old {version} tag was already removed)" if replace else "tagging the release"
        self._call(action, self.api.create_tag, self.repo_id, tag=version, revision=commit, tag_message=message)

    def load_hint(self, version: str, configs: list[str]) -> tuple[str | None, tuple[str, ...]]:
        return None, load_lines(json.dumps(self.repo_id), configs, f", revision={json.dumps(version)}")
