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

    # Read-only here: an engine may define them as class attributes or as properties.
    @property
    def model_id(self) -> str: ...

    @property
    def model_sha(self) -> str | None: ...

    @property
    def vocab_size(self) -> int: ...

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

    Generation is :class:`~hfevol.backends.TransformersBackend`'s own decoding (seeded per
    request: the same seed, prompt and settings give the same text), so a pipeline tested
    against the server sees what the local backend would generate. Prompt log-probabilities
    come from hfevol's loss core (:func:`~hfevol.scoring.losses.span_losses`, float32), the
    same numbers that local scoring computes.
    """

    def __init__(self, name: str = "embedded") -> None:
        from ..backends.local import TransformersBackend

        self.backend = TransformersBackend(model=name, batch_size=1, dtype="float32", device="cpu")
        self.loaded = self.backend.loaded
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

        from ..backends.base import SamplingParams

        params = SamplingParams(temperature=temperature or 0.0, top_p=(top_p or 1.0) if temperature else 1.0, max_new_tokens=max_new_tokens, stop=tuple(stop))
        with self._lock:
            [row] = self.backend.generate_tokens([prompt], [seed], params, output_logits=True)
        decode = self.loaded.tokenizer.decode
        tokens: list[tuple[int, str, float]] = []
        top: list[list[tuple[int, str, float]]] | None = [] if top_n else None
        for token_id, logits in zip(row.ids, row.logits or []):
            logp = torch.log_softmax(logits.float(), dim=-1)
            tokens.append((token_id, decode([token_id]), float(logp[token_id])))
            if top is not None:
                values, idx = logp.topk(top_n)
                top.append([(int(i), decode([int(i)]), float(v)) for v, i in zip(values, idx)])
        text = decode(row.ids, skip_special_tokens=True)
        reason = "eos_token" if row.ended else "length"
        if reason == "length" and any(text.endswith(s) for s in stop):
            reason = "stop_sequence"
        return Generation(text, tokens, top, reason, row.prompt_tokens)

    def prefill(self, prompt: str, add_special_tokens: bool = True) -> list[dict[str, Any]]:
        """TGI's ``details.prefill``: each prompt token with log P(token | tokens before it); the first has none."""
        tok = self.loaded.tokenizer
        ids = tok(prompt, add_special_tokens=add_special_tokens).input_ids
        logp = self._token_logprobs(ids)
        return [{"id": token_id, "text": tok.decode([token_id]), "logprob": lp} for token_id, lp in zip(ids, logp)]

    def prompt_logprobs(self, ids: list[int], top_n: int) -> list[dict[int, dict[str, Any]] | None]:
        """vLLM's ``prompt_logprobs``: None for the first token, then for each later position
        the ``top_n`` likeliest tokens (ranks 1 to ``top_n``) and the prompt token itself,
        with its own rank, when it is not among them."""
        import torch

        decode = self.loaded.tokenizer.decode
        own = self._token_logprobs(ids)
        with self._lock, torch.inference_mode():  # the ranks need every token's log-probability, not a loss
            rows = torch.log_softmax(self.loaded.model(torch.tensor([ids])).logits[0, :-1].float(), dim=-1)
        out: list[dict[int, dict[str, Any]] | None] = [None]
        for k in range(1, len(ids)):
            row, token_id = rows[k - 1], ids[k]
            entries = {}
            if top_n:
                values, top = row.topk(top_n)
                entries = {int(i): {"logprob": float(v), "rank": r + 1, "decoded_token": decode([int(i)])} for r, (v, i) in enumerate(zip(values, top))}
            rank = entries[token_id]["rank"] if token_id in entries else int((row > row[token_id]).sum()) + 1
            entries[token_id] = {"logprob": own[k], "rank": rank, "decoded_token": decode([token_id])}
            out.append(entries)
        return out

    def _token_logprobs(self, ids: list[int]) -> list[float | None]:
        """log P(ids[k] | ids[:k]) for each position (None for the first), from the loss core: one one-token span each."""
        from ..scoring.losses import TokenSequence, span_losses

        sequence = TokenSequence(tuple(ids), tuple((str(k), k, k + 1) for k in range(1, len(ids))))
        with self._lock:
            [losses] = span_losses(self.loaded.model, [sequence], pad_token_id=self.loaded.tokenizer.pad_token_id or 0)
        return [None, *(-losses[str(k)].total for k in range(1, len(ids)))]
