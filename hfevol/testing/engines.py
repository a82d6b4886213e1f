"""What stands behind the test server: the real embedded model, or a fast deterministic echo for protocol tests."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class Generation:
    """One completion, in the terms TGI reports it."""

    text: str
    tokens: list[tuple[int, str, float]]
    """(id, text, log-probability) of each generated token."""
    top_tokens: list[list[tuple[int, str, float]]] | None
    finish_reason: str
    """TGI's names: ``length``, ``eos_token`` or ``stop_sequence``."""
    prompt_tokens: int


class Engine(Protocol):
    """The model side of the test server."""

    model_id: str
    model_sha: str | None
    vocab_size: int

    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[dict[str, Any]]: ...

    def decode(self, ids: list[int]) -> str: ...

    def chat_prompt(self, messages: list[dict[str, str]]) -> str: ...

    def generate(
        self, prompt: str, *, max_new_tokens: int, temperature: float | None, top_p: float | None, seed: int | None, stop: list[str], top_n: int
    ) -> Generation: ...

    def prefill(self, prompt: str, add_special_tokens: bool = True) -> list[dict[str, Any]]: ...

    def prompt_logprobs(self, ids: list[int], top_n: int) -> list[dict[int, dict[str, Any]] | None]: ...


class EchoEngine:
    """A deterministic stand-in model: it answers ``Rewritten (seed S): <last line of the prompt>``.

    Tokens are whitespace-separated words with made-up ids (a token-id prompt reads back as
    ``<id>`` words). It has no log-probabilities worth the name, so it refuses prompt
    log-probs: tests of those use :class:`ModelEngine`.
    """

    model_id = "hfevol/echo-model"
    model_sha = "0123456789abcdef0123456789abcdef01234567"
    vocab_size = 49152

    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[dict[str, Any]]:
        return [{"id": _word_id(m.group()), "text": m.group(), "start": m.start(), "stop": m.end()} for m in re.finditer(r"\S+", text)]

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        return "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages) + "<|assistant|>\n"

    def generate(
        self, prompt: str, *, max_new_tokens: int, temperature: float | None, top_p: float | None, seed: int | None, stop: list[str], top_n: int
    ) -> Generation:
        plain = re.sub(r"<\|[^|>]*\|>", "", prompt)  # drop chat-template markers such as <|im_end|>
        lines = [line for line in plain.splitlines() if line.strip() and line.strip() not in ("user", "assistant", "system")]
        text = f"Rewritten ({0 if seed is None else seed}): {lines[-1].strip() if lines else ''}"
        words = text.split(" ")
        reason = "eos_token"
        if len(words) > max_new_tokens:
            words, reason = words[:max_new_tokens], "length"
        text = " ".join(words)
        for s in stop:
            if s in text:
                text, reason = text[: text.index(s) + len(s)], "stop_sequence"
        tokens = [(_word_id(w), w, -0.5) for w in text.split(" ")]
        top = [[(i, w, lp)] * top_n for i, w, lp in tokens] if top_n else None
        return Generation(text, tokens, top, reason, len(self.tokenize(prompt)))

    def decode(self, ids: list[int]) -> str:
        return " ".join(f"<{i}>" for i in ids)

    def prefill(self, prompt: str, add_special_tokens: bool = True) -> list[dict[str, Any]]:
        raise NotImplementedError(NO_LOGPROBS)

    def prompt_logprobs(self, ids: list[int], top_n: int) -> list[dict[int, dict[str, Any]] | None]:
        raise NotImplementedError(NO_LOGPROBS)


NO_LOGPROBS = "the echo engine has no prompt log-probabilities; start the server with the model engine"


def _word_id(word: str) -> int:
    return sum(word.encode()) % EchoEngine.vocab_size


class ModelEngine:
    """The real embedded model (SmolLM2-135M-Instruct) on the CPU, one request at a time.

    Sampling is seeded per request (the same seed, prompt and settings give the same
    text), and log-probabilities are computed in float32 from the model's logits.
    """

    def __init__(self, name: str = "embedded") -> None:
        from ..models import load_model

        self.loaded = load_model(name, device="cpu", dtype="float32")
        self.model_id = self.loaded.identity["model"]
        self.model_sha = self.loaded.identity.get("revision")
        self._lock = threading.Lock()

    @property
    def context_length(self) -> int:
        return int(self.loaded.model.config.max_position_embeddings)

    @property
    def vocab_size(self) -> int:
        return int(self.loaded.model.config.vocab_size)

    def decode(self, ids: list[int]) -> str:
        return self.loaded.tokenizer.decode(ids)

    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[dict[str, Any]]:
        enc = self.loaded.tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
        return [{"id": i, "text": text[a:b], "start": a, "stop": b} for i, (a, b) in zip(enc.input_ids, enc.offset_mapping)]

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        return self.loaded.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(
        self, prompt: str, *, max_new_tokens: int, temperature: float | None, top_p: float | None, seed: int | None, stop: list[str], top_n: int
    ) -> Generation:
        import torch

        from ..backends._sampling import RowSampler

        tok, model = self.loaded.tokenizer, self.loaded.model
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": tok.pad_token_id}
        if temperature:
            kwargs["logits_processor"] = [RowSampler([seed], temperature, top_p or 1.0)]
            kwargs["top_k"] = None
        if stop:
            kwargs.update(stop_strings=stop, tokenizer=tok)
        with self._lock, torch.inference_mode():
            out = model.generate(ids, output_logits=True, return_dict_in_generate=True, **kwargs)
        new = out.sequences[0, ids.shape[1] :].tolist()
        eos = {tok.eos_token_id, *_as_list(model.generation_config.eos_token_id)}
        tokens, top = [], [] if top_n else None
        reason = "length"
        for step, token_id in enumerate(new):
            logp = torch.log_softmax(out.logits[step][0].float(), dim=-1)
            if token_id in eos:
                reason = "eos_token"
                break
            tokens.append((token_id, tok.decode([token_id]), float(logp[token_id])))
            if top is not None:
                values, idx = logp.topk(top_n)
                top.append([(int(i), tok.decode([int(i)]), float(v)) for v, i in zip(values, idx)])
        text = tok.decode([t[0] for t in tokens], skip_special_tokens=True)
        if reason == "length" and any(text.endswith(s) for s in stop):
            reason = "stop_sequence"
        return Generation(text, tokens, top, reason, int(ids.shape[1]))

    def prefill(self, prompt: str, add_special_tokens: bool = True) -> list[dict[str, Any]]:
        """TGI's ``details.prefill``: each prompt token with log P(token | tokens before it); the first has none."""
        tok = self.loaded.tokenizer
        ids = tok(prompt, add_special_tokens=add_special_tokens).input_ids
        logp = self._next_token_logprobs(ids)
        out = []
        for k, token_id in enumerate(ids):
            out.append({"id": token_id, "text": tok.decode([token_id]), "logprob": None if k == 0 else float(logp[k - 1, token_id])})
        return out

    def prompt_logprobs(self, ids: list[int], top_n: int) -> list[dict[int, dict[str, Any]] | None]:
        """vLLM's ``prompt_logprobs``: None for the first token, then for each later position
        the ``top_n`` likeliest tokens (ranks 1 to ``top_n``) and the prompt token itself,
        with its own rank, when it is not among them."""
        decode = self.loaded.tokenizer.decode
        logp = self._next_token_logprobs(ids)
        out: list[dict[int, dict[str, Any]] | None] = [None]
        for k in range(1, len(ids)):
            row, token_id = logp[k - 1], ids[k]
            entries = {}
            if top_n:
                values, top = row.topk(top_n)
                entries = {int(i): {"logprob": float(v), "rank": r + 1, "decoded_token": decode([int(i)])} for r, (v, i) in enumerate(zip(values, top))}
            if token_id not in entries:
                rank = int((row > row[token_id]).sum()) + 1
                entries[token_id] = {"logprob": float(row[token_id]), "rank": rank, "decoded_token": decode([token_id])}
            out.append(entries)
        return out

    def _next_token_logprobs(self, ids: list[int]) -> Any:
        """Row ``k``: float32 log-probabilities of the token after ``ids[: k + 1]``, from one forward pass."""
        import torch

        with self._lock, torch.inference_mode():
            logits = self.loaded.model(torch.tensor([ids])).logits[0, :-1].float()
        return torch.log_softmax(logits, dim=-1)


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
