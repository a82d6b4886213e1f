"""Which credentials reach which server, end to end through the CLI, read from the test server's recorded headers.

The Hugging Face token (``HF_TOKEN``, or the login that ``hf auth login`` stores) goes only
to Hugging Face hosts; a self-hosted server gets only the key named with ``--token-env``.
Every route is driven: TGI chat and ``/generate``, OpenAI chat and completions (vLLM's
flavour), ``respond``, and ``score --endpoint`` through TGI and vLLM.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hfevol.cli import main
from hfevol.testing import EchoEngine, TGITestServer, VLLMTestServer

pytestmark = pytest.mark.integration

TOKEN = "hf_hfevolTestToken0123456789abcdef"


class _LogprobEngine(EchoEngine):
    """The echo model with made-up prompt log-probabilities, so that ``score --endpoint`` runs on both flavours."""

    def prefill(self, prompt, add_special_tokens=True):
        return [{"id": t["id"], "text": t["text"], "logprob": None if k == 0 else -1.0} for k, t in enumerate(self.tokenize(prompt))]

    def prompt_logprobs(self, ids, top_n):
        return [None] + [{i: {"logprob": -1.0, "rank": 1, "decoded_token": "w"}} for i in ids[1:]]


@pytest.fixture(params=["HF_TOKEN", "stored login"])
def hf_token(request, monkeypatch, isolated_env: Path) -> str:
    """The Hugging Face token, set as huggingface_hub would find it; never the real user's login."""
    if request.param == "HF_TOKEN":
        monkeypatch.setenv("HF_TOKEN", TOKEN)
    else:
        path = isolated_env / "hf-home" / "token"  # HF_HOME/token, where `hf auth login` writes it (conftest points HF_HOME here)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(TOKEN)
        monkeypatch.setenv("HF_TOKEN_PATH", str(path))
    from huggingface_hub import get_token

    assert get_token() == TOKEN  # huggingface_hub itself would send it
    return TOKEN


def _seeds(tmp_path: Path) -> Path:
    path = tmp_path / "seeds.jsonl"
    rows = [{"instruction": "Name a colour.", "input": "", "output": "Red is one."}, {"instruction": "Add two and three.", "input": "", "output": "Five."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _server(api: str, **kwargs) -> TGITestServer:
    engine = _LogprobEngine()
    if api == "openai":
        return VLLMTestServer(engine, record_headers=True, **kwargs)
    return TGITestServer(engine, prefill_logprobs=True, record_headers=True, **kwargs)


def _argv(command: str, api: str, route: str | None, url: str, seeds: Path, out: Path, tokenizer: str) -> list[str]:
    argv = [command, "--dataset", str(seeds), "--out", str(out), "--endpoint", url, "--endpoint-api", api, "--max-attempts", "2"]
    if command == "score":
        return argv
    argv += ["--endpoint-route", route, "--max-new-tokens", "16"]
    if route in ("generate", "completions"):
        argv += ["--tokenizer", tokenizer]  # the chat template is rendered here
    if command == "evolve":
        argv += ["--rounds", "1", "--no-elimination"]
    return argv


ROUTES = [
    ("evolve", "tgi", "chat", "/v1/chat/completions"),
    ("evolve", "tgi", "generate", "/generate"),
    ("evolve", "openai", "chat", "/v1/chat/completions"),
    ("evolve", "openai", "completions", "/v1/completions"),
    ("respond", "tgi", "chat", "/v1/chat/completions"),
    ("respond", "openai", "completions", "/v1/completions"),
    ("score", "tgi", None, "/generate"),
    ("score", "openai", None, "/v1/completions"),
]


def _run(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("command, api, route, path", ROUTES, ids=[f"{c}-{a}-{r or 'score'}" for c, a, r, _ in ROUTES])
def test_no_hugging_face_token_reaches_a_self_hosted_server(hf_token, command, api, route, path, tmp_path, tiny_lm_dir, capsys):
    with _server(api) as srv:
        code, printed = _run(_argv(command, api, route, srv.url, _seeds(tmp_path), tmp_path / "out", tiny_lm_dir), capsys)
        seen = srv.headers_seen()
    assert code == 0, printed
    assert sum(1 for _, p, _ in seen if p == path) >= 2  # every row's request reached the server on that route
    for method, p, headers in seen:  # the start-up probes and every generation
        assert "authorization" not in headers, (method, p)
        assert not any(hf_token in value for value in headers.values()), (method, p)
    assert hf_token not in printed


@pytest.mark.parametrize("command, api, route, path", [ROUTES[0], ROUTES[3], ROUTES[6]], ids=["tgi-chat", "openai-completions", "score-tgi"])
def test_a_hugging_face_host_still_gets_the_token(hf_token, command, api, route, path, tmp_path, tiny_lm_dir, capsys, monkeypatch):
    with _server(api) as srv:
        monkeypatch.setenv("HF_ENDPOINT", srv.url)  # the server stands in for the Hub's host
        code, printed = _run(_argv(command, api, route, srv.url, _seeds(tmp_path), tmp_path / "out", tiny_lm_dir), capsys)
        seen = srv.headers_seen()
    assert code == 0, printed
    assert any(p == path for _, p, _ in seen)
    assert all(headers.get("authorization") == f"Bearer {hf_token}" for _, _, headers in seen), [(m, p) for m, p, h in seen if "authorization" not in h]
    record = (tmp_path / "out" / "hfevol_run.json").read_text()
    assert hf_token not in record and hf_token not in printed


@pytest.mark.parametrize("command, api, route, path", [ROUTES[1], ROUTES[2], ROUTES[7]], ids=["tgi-generate", "openai-chat", "score-vllm"])
def test_token_env_sends_that_variable_and_no_hugging_face_token(command, api, route, path, tmp_path, tiny_lm_dir, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("MY_SERVER_KEY", "server-key-7f3a")
    with _server(api, api_key="server-key-7f3a") as srv:  # the generation routes refuse any other key
        code, printed = _run([*_argv(command, api, route, srv.url, _seeds(tmp_path), tmp_path / "out", tiny_lm_dir), "--token-env", "MY_SERVER_KEY"], capsys)
        seen = srv.headers_seen()
    assert code == 0, printed
    assert sum(1 for _, p, _ in seen if p == path) >= 2
    assert all(headers.get("authorization") == "Bearer server-key-7f3a" for _, _, headers in seen)
    assert not any(TOKEN in v for _, _, headers in seen for v in headers.values())
    record = (tmp_path / "out" / "hfevol_run.json").read_text()
    assert "server-key-7f3a" not in record and "server-key-7f3a" not in printed
    if command != "score":  # score records no options
        assert json.loads(record)["commands"][-1]["options"]["token_env"] == "MY_SERVER_KEY"  # the name is recorded, not the key


# -- headers and URLs: sent, never recorded or shown ---------------------------------------


def test_a_header_is_sent_but_only_its_name_is_recorded(tmp_path, capsys):
    out = tmp_path / "out"
    with _server("tgi") as srv:
        code, printed = _run([*_argv("evolve", "tgi", "chat", srv.url, _seeds(tmp_path), out, ""), "--header", "X-Trace-Id: trace-value-5b21"], capsys)
        seen = srv.headers_seen()
    assert code == 0, printed
    assert all(headers.get("x-trace-id") == "trace-value-5b21" for _, _, headers in seen)  # every request carries it
    written = "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file() and p.suffix in (".json", ".md", ".txt", ""))
    assert "trace-value-5b21" not in written + printed
    options = json.loads((out / "hfevol_run.json").read_text())["commands"][-1]["options"]
    assert options["header_names"] == ["X-Trace-Id"] and "header" not in options


def test_retry_failed_asks_for_the_values_of_recorded_headers_again(tmp_path, capsys):
    out = tmp_path / "out"
    with _server("tgi") as srv:
        assert _run([*_argv("evolve", "tgi", "chat", srv.url, _seeds(tmp_path), out, ""), "--header", "X-Trace-Id: v1"], capsys)[0] == 0
        code, printed = _run(["retry-failed", str(out)], capsys)
        assert code == 2 and "X-Trace-Id" in printed and "--header 'X-Trace-Id: VALUE'" in printed
        code, printed = _run(["retry-failed", str(out), "--header", "x-trace-id: v2"], capsys)
    assert code == 0 and "no failed rows" in printed


@pytest.mark.parametrize(
    "header", ["Authorization: Bearer abc-secret-1", "X-Auth-Token: abc-secret-1", "x-api-key: abc-secret-1", "Cookie: s=abc-secret-1", "Api-Key: abc-secret-1"]
)
def test_credential_headers_are_refused_on_the_command_line(header, tmp_path, capsys):
    code, printed = _run([*_argv("evolve", "tgi", "chat", "http://127.0.0.1:9", _seeds(tmp_path), tmp_path / "out", ""), "--header", header], capsys)
    assert code == 2 and "--token-env" in printed and header.partition(":")[0] in printed
    assert "abc-secret-1" not in printed
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "url, shown",
    [
        ("http://127.0.0.1:9/?api_key=s3cret-query", "http://127.0.0.1:9/?api_key=***"),
        ("http://127.0.0.1:9/v1#s3cret-fragment", "http://127.0.0.1:9/v1#***"),
        ("http://admin:s3cret-pass@127.0.0.1:9", "http://***@127.0.0.1:9"),
        ("ftp://admin:s3cret-pass@127.0.0.1:9/?key=s3cret-query", "ftp://***@127.0.0.1:9/?key=***"),
    ],
)
def test_an_endpoint_url_with_a_secret_is_refused_without_echoing_it(url, shown, tmp_path, capsys):
    code, printed = _run(_argv("evolve", "tgi", "chat", url, _seeds(tmp_path), tmp_path / "out", ""), capsys)
    assert code == 2 and shown in printed and "--token-env" in printed
    assert "s3cret" not in printed


def test_the_run_record_keeps_no_url_secret_nor_header_value():
    import argparse

    from hfevol.cli._options import run_options

    args = argparse.Namespace(run=print, endpoint=["http://u:pw-9@h:1/?k=key-9", "http://h:2"], header=["X-A: value-9", "X-B:"], token_env="K")
    options = run_options(args)
    assert options == {"endpoint": ["http://***@h:1/?k=***", "http://h:2"], "header_names": ["X-A", "X-B"], "token_env": "K"}


def test_a_backend_shows_no_header_value():
    from hfevol.backends.tgi import TGIBackend

    backend = TGIBackend(urls="http://127.0.0.1:9", headers={"X-Trace-Id": "value-3c9d"})
    assert backend.headers == {"X-Trace-Id": "value-3c9d"}  # kept, to be sent
    assert "value-3c9d" not in repr(backend) + str(backend)


@pytest.mark.parametrize(
    "url, shown",
    [
        ("http://h:1/v1", "http://h:1/v1"),
        ("https://u:p-4@h/x?a=k-4&b&c=", "https://***@h/x?a=***&***&c=***"),
        ("http://[::1/?api_key=k-4", "http://[::1/***"),  # not a URL (urlsplit refuses it): cut at the query
        ("http://u:p-4@[::1/x", "***@[::1/x"),
    ],
)
def test_redact_url_keeps_the_host_and_path_only(url, shown):
    from hfevol.redact import redact_url

    assert redact_url(url) == shown and "-4" not in redact_url(url)
