"""A tiny causal LM with random weights and a character tokenizer, built in a second.

It stands in for a real model where only the arithmetic matters (spans, batching,
padding, chunking): token ids are one per character, so spans can be worked out by hand,
and the tokenizer adds a BOS token, as Llama's does.
"""

from __future__ import annotations

import string
from pathlib import Path

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<|user|>", "<|assistant|>", "<|end|>"]
CHARS = [c for c in string.printable if c not in "\r\x0b\x0c"]
CHAT_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"


def char_tokenizer(chat_template: bool = True):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    tok.add_special_tokens(SPECIALS)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def ids_of(text: str) -> list[int]:
    """The ids the character tokenizer gives ``text`` (no special tokens), by construction."""
    vocab = {token: i for i, token in enumerate(SPECIALS + CHARS)}
    return [vocab[c] for c in text]


def tiny_llama(vocab_size: int, seed: int = 0, context: int = 256):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context,
        initializer_range=0.3,  # spread-out logits, so losses differ from row to row
        tie_word_embeddings=False,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM(config).eval()


def save_tiny_model(folder: Path, *, chat_template: bool = True, context: int = 256) -> Path:
    tokenizer = char_tokenizer(chat_template)
    model = tiny_llama(len(tokenizer), context=context)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
