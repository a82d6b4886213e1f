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
    return tmp_path


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
