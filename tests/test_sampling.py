from __future__ import annotations

import torch

from hfevol.backends._sampling import RowSampler


def _draws(sampler_factory, logits, n=400):
    counts = {}
    for k in range(n):
        sampler = sampler_factory(k)
        token = int(sampler(None, logits.clone()).argmax(dim=-1)[0])
        counts[token] = counts.get(token, 0) + 1
    return counts


def test_top_p_keeps_the_smallest_set_reaching_the_mass():
    # probabilities 0.5, 0.3, 0.15, 0.05: with top_p=0.75 the kept set is {0, 1}
    # (mass before token 2 is 0.8 >= 0.75, so token 2 is dropped), by hand.
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    counts = _draws(lambda k: RowSampler([k], temperature=1.0, top_p=0.75), logits)
    assert set(counts) == {0, 1}
    # renormalised: 0.5 / 0.8 = 0.625 for token 0
    assert abs(counts[0] / 400 - 0.625) < 0.08


def test_output_is_minus_inf_except_the_drawn_token():
    scores = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    out = RowSampler([1, 2], temperature=0.7, top_p=0.95)(None, scores)
    assert torch.isinf(out).sum().item() == 4
    assert (out.max(dim=-1).values == 0).all()


def test_rows_draw_from_their_own_seed_regardless_of_neighbours():
    logits = torch.randn(1, 50, generator=torch.Generator().manual_seed(0))
    alone = [RowSampler([42], 1.0, 1.0)(None, logits).argmax().item()]
    pair = RowSampler([7, 42], 1.0, 1.0)(None, logits.repeat(2, 1)).argmax(dim=-1).tolist()
    assert pair[1] == alone[0]


def test_temperature_sharpens():
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    cold = _draws(lambda k: RowSampler([k], temperature=0.1, top_p=1.0), logits, n=200)
    warm = _draws(lambda k: RowSampler([k], temperature=1.0, top_p=1.0), logits, n=200)
    # p(token 0) is 0.665 at temperature 1 and 0.99995 at 0.1 (softmax by hand)
    assert cold.get(0, 0) >= 195
    assert 110 <= warm.get(0, 0) <= 160
