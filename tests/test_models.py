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


# -- a model folder that does not load: the whole reason on one line, which part failed, a hint --


def _copy_without(source: str, target: Path, *patterns: str) -> str:
    import shutil

    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*patterns))
    return str(target)


def _load_failure(folder: str):
    from hfevol.errors import ModelLoadError
    from hfevol.models import load_model

    with pytest.raises(ModelLoadError) as info:
        load_model(folder, device="cpu")
    error = info.value
    assert "\n" not in error.message and error.hint
    return error


def test_a_folder_without_its_tokenizer_gives_the_whole_reason(tiny_lm_dir, tmp_path: Path):
    folder = _copy_without(tiny_lm_dir, tmp_path / "m", "tokenizer*", "special_tokens_map.json")
    error = _load_failure(folder)
    cause = " ".join(str(error.__cause__).split())
    assert "\n" in str(error.__cause__).strip()  # transformers' reason spans lines: all of them are kept
    assert error.message == f"the tokenizer of model {folder!r} does not load: {cause}"
    assert "tokenizer.save_pretrained" in error.hint


def test_a_folder_without_weights_or_with_a_broken_config_names_the_part(tiny_lm_dir, tmp_path: Path):
    no_weights = _copy_without(tiny_lm_dir, tmp_path / "w", "*.safetensors")
    error = _load_failure(no_weights)
    assert error.message.startswith(f"model {no_weights!r} does not load as a causal language model: ") and "model.safetensors" in error.message
    assert "the folder needs config.json and the weights" in error.hint and "HF_HUB_OFFLINE" not in error.hint
    broken = _copy_without(tiny_lm_dir, tmp_path / "c")
    (Path(broken) / "config.json").write_text('{"model_type": "llama",')
    error = _load_failure(broken)
    assert error.message.startswith(f"the config of model {broken!r} does not load: ") and "config.json" in error.message
    assert error.hint.startswith("config.json must be valid JSON")


def test_a_damaged_weights_file_is_a_model_error_not_a_traceback(tiny_lm_dir, tmp_path: Path, capsys):
    from hfevol.cli import main

    folder = _copy_without(tiny_lm_dir, tmp_path / "m")
    (Path(folder) / "model.safetensors").write_bytes(b"not safetensors at all")
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"instruction": "Say hi.", "output": "Hi!"}\n')
    assert main(["score", "--dataset", str(seeds), "--model", folder, "--device", "cpu", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    first, hint = err[err.index("error: ") :].splitlines()[:2]
    assert first.startswith(f"error: model {folder!r} does not load as a causal language model: ")
    assert hint.startswith("Hint: the folder needs config.json and the weights")
    assert not (tmp_path / "o").exists()


def test_the_reason_is_cut_only_at_a_sentence_end_when_very_long():
    from hfevol.models.loading import _REASON_CHARS, _reason

    short = ValueError("First line.\n\nSecond line\nends here.")
    assert _reason(short) == "First line. Second line ends here."
    long = ValueError("Unrecognized class. Model type should be one of " + ", ".join(f"Config{i}" for i in range(300)) + ".")
    assert _reason(long) == "Unrecognized class. [...]" and len(str(long)) > _REASON_CHARS
