"""A client-side chat template needs the embedded model's tokenizer only: it loads without converting the model."""

from __future__ import annotations

import pytest

from hfevol.models import embedded, loading
from hfevol.models.loading import load_template_tokenizer


def test_the_embedded_tokenizer_loads_from_the_gguf_when_the_model_is_not_converted(tmp_path, monkeypatch):
    cold = tmp_path / "cold-home"
    monkeypatch.setenv("HFEVOL_HOME", str(cold))  # no converted copy here
    monkeypatch.setattr(loading, "_GGUF_TOKENIZERS", {})

    def no_conversion(*args, **kwargs):
        raise AssertionError("the whole model was converted to get a tokenizer")

    monkeypatch.setattr(embedded, "ensure_converted", no_conversion)
    assert embedded.converted_dir() is None
    tokenizer = load_template_tokenizer("embedded", purpose="route 'generate'", hint="")
    assert not (cold / "models").exists()
    # SmolLM2-135M-Instruct's published tokenizer: 49152 tokens, ChatML markers at ids 1 and 2, its default system prompt
    assert len(tokenizer) == 49152
    assert tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [1, 2]
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "Hi there"}], tokenize=False, add_generation_prompt=True)
    assert rendered == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    )
    assert load_template_tokenizer("embedded", purpose="x", hint="") is tokenizer  # read once per process


def test_a_converted_copy_is_used_when_there_is_one(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()

    class Tokenizer:
        chat_template = "{{ messages }}"

    seen = []
    monkeypatch.setattr(embedded, "converted_dir", lambda name="embedded": folder)
    monkeypatch.setattr("transformers.AutoTokenizer.from_pretrained", lambda source, **kw: seen.append(source) or Tokenizer())
    assert isinstance(loading.load_tokenizer("embedded"), Tokenizer) and seen == [str(folder)]


def test_a_missing_tokenizer_is_a_model_error(tmp_path):
    from hfevol.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="does not exist"):
        loading.load_tokenizer(str(tmp_path / "nothing"))
