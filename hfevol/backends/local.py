"""In-process generation with a transformers causal LM (the CPU default)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..extras import require_local
from ..models.loading import EMBEDDED_MODEL, LoadedModel, load_model
from .base import Backend, FinishReason, GenerationRequest, GenerationResult, SamplingParams


@dataclass
class TransformersBackend(Backend):
    """Generate with a transformers model in this process.

    Batches are left-padded and rendered with the model's chat template. Sampling is
    done per row with the row's own seeded generator, so a row's text depends on its
    seed and prompt, not on which other rows share its batch (up to the tiny float
    differences that padding causes). The model loads once per process and is shared by
    every backend instance with the same settings.

    Args:
        model: ``"embedded"`` (SmolLM2-135M-Instruct), a Hub id or a local folder.
        batch_size: rows per forward batch.
        dtype: ``"auto"``, ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.

    Raises:
        MissingDependencyError: when built, without ``hfevol[local]`` (torch, transformers; and gguf,
            accelerate for an embedded model).
    """

    model: str = EMBEDDED_MODEL
    batch_size: int = 8
    dtype: str = "auto"
    device: str = "auto"

    kind = "transformers"

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size!r} must be an integer >= 1")
        require_local(f"TransformersBackend(model={self.model!r})", self.model)

    @property
    def loaded(self) -> LoadedModel:
        """The model, loaded on first use."""
        if getattr(self, "_loaded", None) is None:
            self._loaded = load_model(self.model, dtype=self.dtype, device=self.device)
        return self._loaded

    def describe(self) -> dict[str, Any]:
        return {"backend": self.kind, **self.loaded.identity}

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        results: list[GenerationResult | None] = [None] * len(requests)
        groups: dict[tuple[SamplingParams, bool], list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault((request.params, request.top1), []).append(i)
        tokenizer = self.loaded.tokenizer
        for (params, top1), indices in groups.items():
            prompts = {i: self._render(requests[i]) for i in indices}
            lengths = {i: len(tokenizer(prompts[i], add_special_tokens=False).input_ids) for i in indices}
            limit = self._context_length()
            runnable = []
            for i in indices:
                if limit is not None and lengths[i] + params.max_new_tokens > limit:
                    results[i] = GenerationResult.failure(
                        f"prompt has {lengths[i]} tokens and max_new_tokens is {params.max_new_tokens}, more than the model's context of {limit} tokens"
                    )
                else:
                    runnable.append(i)
            runnable.sort(key=lambda i: lengths[i])  # similar lengths share a batch: less padding
            for start in range(0, len(runnable), self.batch_size):
                chunk = runnable[start : start + self.batch_size]
                outs = self._generate_batch([prompts[i] for i in chunk], [requests[i].seed for i in chunk], params, top1=top1)
                for i, out in zip(chunk, outs):
                    results[i] = out
        return [r for r in results if r is not None]

    # -- internals -------------------------------------------------------------------

    def _render(self, request: GenerationRequest) -> str:
        tokenizer = self.loaded.tokenizer
        if not tokenizer.chat_template:
            raise ConfigError(
                f"model {self.model!r} has no chat template",
                hint="use an instruct model, or set tokenizer.chat_template on a local copy.",
            )
        return tokenizer.apply_chat_template(request.as_messages(), tokenize=False, add_generation_prompt=True)

    def _context_length(self) -> int | None:
        config = self.loaded.model.config
        return getattr(config, "max_position_embeddings", None)

    def generate_tokens(
        self, prompts: Sequence[str], seeds: Sequence[int | None], params: SamplingParams, *, output_logits: bool = False, top1: bool = False
    ) -> list[TokenOutput]:
        """Generate from already rendered prompts (no special tokens added) and return the new tokens.

        This is the decoding loop behind :meth:`generate`, for callers that need token ids
        rather than text (the model engine of :mod:`hfevol.testing`): one left-padded batch,
        each row sampled with its own seed, cut before its first end-of-sequence token.

        Args:
            prompts: the prompt texts, one per row.
            seeds: one seed per row (None: 0); unused when ``params`` is greedy.
            params: the decoding settings; ``params.stop`` strings end a row's generation.
            output_logits: also return the model's raw next-token logits at each step.
            top1: also record, at each step, the largest probability of the raw next-token
                distribution (read before the row sampler; ``TokenOutput.top1``).
        """
        import torch

        from ._sampling import RowSampler, Top1Recorder

        loaded = self.loaded
        tokenizer, model = loaded.tokenizer, loaded.model
        tokenizer.padding_side = "left"
        enc = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
        recorder = Top1Recorder() if top1 else None
        processors: list[Any] = [recorder] if recorder is not None else []  # the recorder reads the scores before the sampler
        if not params.greedy:
            processors.append(RowSampler(list(seeds), params.temperature, params.top_p))
            kwargs["top_k"] = None  # our sampler does the filtering; keep generate's defaults out of it
        if processors:
            kwargs["logits_processor"] = processors
        if params.stop:
            kwargs["stop_strings"] = list(params.stop)
            kwargs["tokenizer"] = tokenizer
        if output_logits:
            kwargs.update(output_logits=True, return_dict_in_generate=True)
        with torch.inference_mode():
            out = model.generate(**enc, **kwargs)
        sequences = out.sequences if output_logits else out
        new_tokens = sequences[:, enc.input_ids.shape[1] :]
        eos_ids = set(_as_list(model.generation_config.eos_token_id)) | {tokenizer.eos_token_id}
        rows = []
        for b, (row, prompt_len) in enumerate(zip(new_tokens.tolist(), enc.attention_mask.sum(dim=1).tolist())):
            n = next((k for k, t in enumerate(row) if t in eos_ids), None)
            ids = row[:n] if n is not None else row
            logits = [step[b] for step in out.logits[: len(ids)]] if output_logits else None
            best = recorder.row(b, len(ids)) if recorder is not None else None  # positions after the end of sequence are masked
            rows.append(TokenOutput(ids=ids, ended=n is not None, prompt_tokens=int(prompt_len), logits=logits, top1=best))
        return rows

    def _generate_batch(self, prompts: list[str], seeds: list[int | None], params: SamplingParams, *, top1: bool = False) -> list[GenerationResult]:
        tokenizer = self.loaded.tokenizer
        results = []
        for row in self.generate_tokens(prompts, seeds, params, top1=top1):
            finished = row.ended
            text = tokenizer.decode(row.ids, skip_special_tokens=True)
            for s in params.stop:
                if s in text:
                    text, finished = text[: text.index(s)], True
            reason: FinishReason = "stop" if finished or len(row.ids) < params.max_new_tokens else "length"
            results.append(
                GenerationResult(text=text.strip(), finish_reason=reason, prompt_tokens=row.prompt_tokens, completion_tokens=len(row.ids), top1=row.top1)
            )
        return results


@dataclass(frozen=True)
class TokenOutput:
    """One row of :meth:`TransformersBackend.generate_tokens`."""

    ids: list[int]
    """The generated token ids, up to (not including) the first end-of-sequence token."""
    ended: bool
    """True when the model generated an end-of-sequence token."""
    prompt_tokens: int
    logits: list[Any] | None = None
    """With ``output_logits``: the raw next-token logits (one vocabulary-sized tensor) that chose each of ``ids``."""
    top1: tuple[float, ...] | None = None
    """With ``top1``: the largest probability of the raw next-token distribution at each of ``ids``."""


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
