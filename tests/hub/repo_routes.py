"""The test Hub's account and repository routes: ``whoami-v2``, creating a repository,
its settings (visibility), its info (with the card's metadata), and ``validate-yaml``.
"""

from __future__ import annotations

import hashlib
import re

from .metadata import validate_card_yaml
from .request import URL_PREFIX, HubRequest, Reply, error
from .store import StoreError

_NAME = re.compile(r"^(?!.*(--|\.\.))[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class RepoRoutes(HubRequest):
    def whoami(self) -> None:
        user = self.user(required=True)
        orgs = [{"name": org, "type": "org"} for org, members in self.hub.orgs.items() if user in members]
        raise Reply(200, {"type": "user", "id": hashlib.sha1(user.encode()).hexdigest()[:24], "name": user, "fullname": user, "orgs": orgs,
                           "auth": {"type": "access_token", "accessToken": {"displayName": "test-hub token", "role": "write"}}})  # fmt: skip

    def create_repo(self) -> None:
        user = self.user(required=True)
        payload = self.json_body()
        if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
            raise error(400, '"name" is required')
        name, namespace = payload["name"], payload.get("organization") or user
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_PREFIX:
            raise error(400, f'"type" must be one of {sorted(URL_PREFIX)}')
        if not _NAME.match(name) or not _NAME.match(namespace):
            raise error(400, f"Invalid repo name {namespace}/{name}")
        if not self.can_write(user, namespace):  # type: ignore[arg-type]
            raise error(403, f"You don't have the rights to create a repo under the namespace {namespace!r}")
        private = payload.get("visibility") == "private" or payload.get("private") is True
        repo_id = f"{namespace}/{name}"
        url = f"{self.hub.url}/{URL_PREFIX[repo_type]}{repo_id}"
        try:
            self.hub.store.create_repo(repo_type, repo_id, private, user)  # type: ignore[arg-type]
        except StoreError as exc:
            raise Reply(409, {"error": exc.message, "url": url}, {"X-Error-Message": exc.message}) from exc
        raise Reply(200, {"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]})

    def settings(self, repo_type: str, repo_id: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        payload = self.json_body()
        if not isinstance(payload, dict) or not payload:
            raise error(400, "At least one setting must be updated")
        if "visibility" in payload:
            if payload["visibility"] not in ("private", "public"):
                raise error(400, '"visibility" must be "private" or "public"')
            repo.private = payload["visibility"] == "private"
        if "private" in payload:
            if not isinstance(payload["private"], bool):
                raise error(400, '"private" must be a boolean')
            repo.private = payload["private"]
        self.hub.store.save()
        raise Reply(200, {})

    def repo_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        import yaml

        repo = self.repo(repo_type, repo_id)
        commit = repo.resolve(revision)
        card = None
        if "README.md" in commit.files:
            text = self.hub.store.read(commit.files["README.md"]).decode("utf-8", "replace")
            end = text.find("\n---", 4)
            if text.startswith("---\n") and end > 0:
                card = yaml.safe_load(text[4:end])
        info = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "author": repo.namespace, "sha": commit.id,
            "private": repo.private, "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
            "createdAt": repo.created_at, "lastModified": commit.date, "cardData": card,
            "siblings": [{"rfilename": p} for p in sorted(commit.files)],
        }  # fmt: skip
        raise Reply(200, info)

    def validate_yaml(self) -> None:
        self.user(required=False)
        payload = self.json_body()
        if not isinstance(payload, dict) or not isinstance(payload.get("content"), str):
            raise error(400, '"content" must be a string')
        errors = validate_card_yaml(payload["content"])
        if errors:
            raise Reply(400, {"errors": [{"message": e} for e in errors], "warnings": []})
        raise Reply(200, {"errors": [], "warnings": []})
