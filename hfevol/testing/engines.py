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

    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[dict[str, Any]]: ...

    def chat_prompt(self, messages: list[dict[str, str]]) -> str: ...

    def generate(
        self, prompt: str, *, max_new_tokens: int, temperature: float | None, top_p: float | None, seed: int | None, stop: list[str], top_n: int
    ) -> Generation: ...

    def prefill(self, prompt: str, add_special_tokens: bool = True) -> list[dict[str, Any]]: ...


class EchoEngine:
    """A deterministic stand-in model: it answers ``Rewritten (seed S): <last line of the prompt>``.

    Tokens are whitespace-separated words with made-up ids. It has no log-probabilities
    worth the name, so it refuses prefill log-probs: tests of those use :class:`ModelEngine`.
    """

    model_id = "hfevol/echo-model"
    model_sha = "0123456789abcdef0123456789abcdef01234567"

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

    def prefill(self, prompt: str, add_special_tokens: bool = True) -> list[dict[str, Any]]:
        raise NotImplementedError("the echo engine has no prompt log-probabilities; start the server with the model engine")


def _word_id(word: str) -> int:
    return sum(word.encode()) % 49152


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
        import torch

        tok, model = self.loaded.tokenizer, self.loaded.model
        ids = tok(prompt, return_tensors="pt", add_special_tokens=add_special_tokens).input_ids
        with self._lock, torch.inference_mode():
            logits = model(ids).logits[0].float()
        logp = torch.log_softmax(logits[:-1], dim=-1).gather(1, ids[0, 1:, None])[:, 0].tolist()
        out = []
        for k, token_id in enumerate(ids[0].tolist()):
            out.append({"id": token_id, "text": tok.decode([token_id]), "logprob": None if k == 0 else logp[k - 1]})
        return out


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
