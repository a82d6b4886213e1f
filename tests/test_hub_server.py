"""The test Hub refuses what the Hub refuses (raw HTTP, so that no client smooths anything over)."""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.error
import urllib.request

import pytest
from hub import HubServer

pytestmark = pytest.mark.integration
TOKEN = "hf_server_test_token"


@pytest.fixture
def server(tmp_path):
    with HubServer(tmp_path / "store", tokens={TOKEN: "alice"}) as hub:
        yield hub


def _call(hub, method, path, body=None, *, token=TOKEN, content_type="application/json"):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(hub.url + path, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _ndjson(*items):
    return b"".join(json.dumps(i).encode() + b"\n" for i in items)


def _commit(hub, *ops, header=None):
    body = _ndjson({"key": "header", "value": header or {"summary": "s", "description": ""}}, *ops)
    return _call(hub, "POST", "/api/datasets/alice/d/commit/main", body, content_type="application/x-ndjson")


def test_repo_creation_conflict_carries_the_url(server):
    assert _call(server, "POST", "/api/repos/create", {"name": "d", "type": "dataset"})[0] == 200
    status, _, body = _call(server, "POST", "/api/repos/create", {"name": "d", "type": "dataset"})
    assert status == 409 and json.loads(body)["url"] == f"{server.url}/datasets/alice/d"
    assert _call(server, "POST", "/api/repos/create", {"name": "d", "organization": "bob", "type": "dataset"})[0] == 403


def test_tokens_are_checked(server):
    assert _call(server, "GET", "/api/whoami-v2", token=None)[0] == 401
    status, headers, _ = _call(server, "GET", "/api/whoami-v2", token="hf_wrong")
    assert status == 401 and headers["X-Error-Message"] == "Invalid credentials in Authorization header"
    assert _call(server, "POST", "/api/repos/create", {"name": "p", "type": "dataset", "visibility": "private"})[0] == 200
    status, headers, _ = _call(server, "GET", "/api/datasets/alice/p", token=None)
    assert status == 404 and headers["X-Error-Code"] == "RepoNotFound"


def test_malformed_commits_are_rejected_and_change_nothing(server):
    _call(server, "POST", "/api/repos/create", {"name": "d", "type": "dataset"})
    head = server.repo("alice/d").branches["main"]
    good_file = {"key": "file", "value": {"path": "a.txt", "content": base64.b64encode(b"hi").decode(), "encoding": "base64"}}
    assert _call(server, "POST", "/api/datasets/alice/d/commit/main", _ndjson({"key": "header", "value": {"summary": "s"}}, good_file))[0] == 400  # not ndjson
    assert _commit(server, header={"summary": ""})[0] == 400
    assert _commit(server)[0] == 400  # no operation
    assert _commit(server, {"key": "file", "value": {"path": "../x", "content": "aGk=", "encoding": "base64"}})[0] == 400
    assert _commit(server, {"key": "file", "value": {"path": "a.txt", "content": "not base64!", "encoding": "base64"}})[0] == 400
    assert _commit(server, {"key": "lfsFile", "value": {"path": "b.parquet", "algo": "sha256", "oid": "0" * 64, "size": 3}})[0] == 422
    assert _commit(server, {"key": "deletedFile", "value": {"path": "nope.txt"}})[0] == 404
    assert _commit(server, {"key": "rename", "value": {"path": "a.txt"}})[0] == 400
    assert _commit(server, good_file, header={"summary": "s", "parentCommit": "f" * 40})[0] == 412
    assert server.repo("alice/d").branches["main"] == head
    assert _commit(server, good_file)[0] == 200
    assert server.file_at("alice/d", "main", "a.txt") == b"hi"


def test_unknown_revisions_and_files_use_the_hub_error_headers(server):
    _call(server, "POST", "/api/repos/create", {"name": "d", "type": "dataset"})
    status, headers, _ = _call(server, "GET", "/datasets/alice/d/resolve/v9/README.md")
    assert status == 404 and headers["X-Error-Code"] == "RevisionNotFound"
    status, headers, _ = _call(server, "GET", "/datasets/alice/d/resolve/main/README.md")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound"
    assert _call(server, "POST", "/api/datasets/alice/d/tag/main", {"tag": "v1"})[0] == 200
    assert _call(server, "POST", "/api/datasets/alice/d/tag/main", {"tag": "v1"})[0] == 409
    assert _call(server, "POST", "/api/datasets/alice/d/tag/main", {"tag": "bad tag"})[0] == 400
    status, headers, body = _call(server, "GET", "/datasets/alice/d/resolve/v1/.gitattributes", token=None)
    assert status == 200 and headers["X-Repo-Commit"] == server.repo("alice/d").tags["v1"] and b"lfs" in body


def test_blob_ids_are_git_object_ids(server):
    """The test Hub names a file by git's object id, checked against ``git hash-object`` itself."""
    _call(server, "POST", "/api/repos/create", {"name": "d", "type": "dataset"})
    contents = {"a.txt": b"hi\n", "empty.txt": b"", "nul.bin": bytes(range(256)) * 3}
    ops = [{"key": "file", "value": {"path": p, "content": base64.b64encode(c).decode(), "encoding": "base64"}} for p, c in contents.items()]
    assert _commit(server, *ops)[0] == 200
    status, _, body = _call(server, "POST", "/api/datasets/alice/d/paths-info/main", {"paths": list(contents)})
    assert status == 200
    oids = {entry["path"]: entry["oid"] for entry in json.loads(body)}
    for path, content in contents.items():
        git = subprocess.run(["git", "hash-object", "--stdin"], input=content, capture_output=True, check=True, timeout=30)
        assert oids[path] == git.stdout.decode().strip(), path
