from __future__ import annotations

from pathlib import Path

import pytest

from hfevol.errors import ModelNotFoundError
from hfevol.models import resolve_model


def test_missing_model_path_names_it(tmp_path: Path):
    with pytest.raises(ModelNotFoundError, match="does not exist") as info:
        resolve_model(str(tmp_path / "no-model"))
    assert str(tmp_path / "no-model") in str(info.value) and "Hint:" in str(info.value)


def test_folder_without_config_is_refused(tmp_path: Path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_empty_name_is_refused():
    with pytest.raises(ModelNotFoundError):
        resolve_model("")


def test_hub_ids_pass_through_unchanged():
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == ("HuggingFaceTB/SmolLM2-135M-Instruct", {"model": "HuggingFaceTB/SmolLM2-135M-Instruct"})


def test_unreachable_hub_id_is_a_model_error_offline():
    from hfevol.models import load_model

    with pytest.raises(ModelNotFoundError, match="cannot find model"):
        load_model("someone/not-a-model", device="cpu")


@pytest.mark.slow
def test_embedded_model_is_cached_as_safetensors(embedded):
    from hfevol.models.embedded import cached_dir

    folder = cached_dir()
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    assert embedded.identity["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert embedded.tokenizer.chat_template  # an instruct model with its ChatML template
    # A saved model folder loads like any local path.
    path, identity = resolve_model(str(folder))
    assert path == str(folder.resolve()) and identity == {"model": str(folder.resolve())}
