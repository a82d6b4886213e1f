"""The test Hub's ref routes: listing refs (optionally with pull requests), and creating
or deleting tags and branches. ``main`` cannot be deleted, and a tag cannot take a
branch's name.
"""

from __future__ import annotations

from .request import HubRequest, Reply, error
from .store import valid_ref_name


class RefRoutes(HubRequest):
    def refs(self, repo_type: str, repo_id: str) -> None:
        repo = self.repo(repo_type, repo_id)
        out = {
            "branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c} for b, c in sorted(repo.branches.items())],
            "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": c} for t, c in sorted(repo.tags.items())],
            "converts": [],
        }
        if self.query.get("include_prs", ["0"])[0] in ("1", "true", "True"):
            out["pullRequests"] = [{"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": c} for n, c in sorted(repo.pull_requests.items())]
        raise Reply(200, out)

    def tag(self, method: str, repo_type: str, repo_id: str, arg: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        with self.hub.store.lock:
            if method == "DELETE":
                if arg not in repo.tags:
                    raise error(404, f"Invalid rev id: {arg}", "RevisionNotFound")
                del repo.tags[arg]
            else:
                payload = self.json_body()
                tag = payload.get("tag") if isinstance(payload, dict) else None
                if not isinstance(tag, str) or not valid_ref_name(tag):
                    raise error(400, f"Invalid tag name: {tag!r}")
                commit = repo.resolve(arg)
                if tag in repo.tags:
                    raise error(409, f"Tag {tag} already exists")
                if tag in repo.branches:
                    raise error(409, f"A branch named {tag} already exists")
                repo.tags[tag] = commit.id
            self.hub.store.save()
        raise Reply(200, {})

    def branch(self, method: str, repo_type: str, repo_id: str, name: str) -> None:
        repo = self.repo(repo_type, repo_id, write=True)
        with self.hub.store.lock:
            if method == "DELETE":
                if name not in repo.branches or name == "main":
                    raise error(404 if name != "main" else 403, f"Cannot delete branch {name}", "RevisionNotFound" if name != "main" else None)
                del repo.branches[name]
            else:
                if not valid_ref_name(name):
                    raise error(400, f"Invalid branch name: {name!r}")
                if name in repo.branches:
                    raise error(409, f"Branch {name} already exists")
                payload = self.json_body() or {}
                start = repo.resolve(payload.get("startingPoint") or "main")
                repo.branches[name] = start.id
            self.hub.store.save()
        raise Reply(200, {})
