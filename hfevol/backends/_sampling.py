"""Per-row seeded sampling for batched transformers generation."""

from __future__ import annotations

import torch
from transformers import LogitsProcessor


class RowSampler(LogitsProcessor):
    """Draw each row's next token from its own ``torch.Generator``.

    It applies temperature and nucleus (top-p) filtering, samples one token per row, and
    returns scores that are ``-inf`` everywhere but the drawn token, so that greedy
    decoding in ``generate`` picks exactly that token. Global RNG state is never touched.
    """

    def __init__(self, seeds: list[int | None], temperature: float, top_p: float) -> None:
        self.seeds = [0 if s is None else int(s) for s in seeds]
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self._generators: list[torch.Generator] | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._generators is None:
            self._generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            # drop a token when the mass before it already reaches top_p; the top token always stays
            drop = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= self.top_p
            sorted_probs = sorted_probs.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        chosen = torch.stack([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(self._generators)])
        out = torch.full_like(scores, float("-inf"))
        return out.scatter(-1, chosen, 0.0)


class Top1Recorder(LogitsProcessor):
    """Record the largest softmax probability of each row's scores at every step, and change nothing.

    Placed before :class:`RowSampler` (whose output leaves one finite score per row, so that
    ``output_scores`` cannot give this), it sees the model's logits after only the built-in
    processors of ``generate`` (none under greedy decoding for a model whose generation config
    sets no penalties): the raw distribution, before temperature and top-p. One float per row
    and step is kept, not the vocabulary-wide scores.
    """

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []
        self._table: list[list[float]] | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.steps.append(torch.softmax(scores.float(), dim=-1).amax(dim=-1))  # stays on the device: no sync per step
        return scores

    def row(self, b: int, n: int) -> tuple[float, ...]:
        """Row ``b``'s values at its first ``n`` generated positions."""
        if self._table is None:
            self._table = torch.stack(self.steps, dim=1).cpu().tolist() if self.steps else []
        return tuple(self._table[b][:n]) if self._table else ()
