"""Packing, document isolation and loss-weighting invariance on a tiny random Llama."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from trainer.batch import collate, step_totals
from trainer.loss import weighted_loss
from trainer.packing import fill, pack_bfd, shuffled


def test_bfd_packs_every_sample_once_within_capacity():
    rng = random.Random(0)
    lengths = [rng.randint(10, 500) for _ in range(500)]
    packs = pack_bfd(lengths, 512)
    assert sorted(i for p in packs for i in p) == list(range(500))
    assert all(sum(lengths[i] for i in p) <= 512 for p in packs)
    assert fill(packs, lengths, 512) > 0.94  # lower bound on packs: 254, BFD: 266
    assert shuffled(packs, 1) == shuffled(packs, 1) and shuffled(packs, 1) != packs
    with pytest.raises(ValueError, match="capacity"):
        pack_bfd([600], 512)


@pytest.fixture(scope="module")
def tiny(tiny_model):
    from transformers import AutoModelForCausalLM

    from trainer.model import pick_attention

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(
        tiny_model, dtype=torch.float32, attn_implementation=pick_attention("sdpa", torch.device("cpu"))
    ).eval()


def _samples(n, seed=0, vocab=1000):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        length = int(rng.integers(20, 120))
        w = np.zeros(length, np.float32)
        w[int(length * 0.6) :] = 1.0  # the "answer" at the end
        out.append((rng.integers(3, vocab, length), w))
    return out


def _loss(model, samples, norm, n, wsum):
    from trainer.model import batch_hidden_and_head

    b = collate(samples, norm, n, wsum)
    hidden, head = batch_hidden_and_head(model, b)
    return weighted_loss(hidden, head, b.targets, b.target_weights, chunk_tokens=64)


def test_each_sequence_loss_in_a_pack_equals_its_loss_alone(tiny):
    samples = _samples(4)
    with torch.no_grad():
        for k, (ids, w) in enumerate(samples):
            alone = _loss(tiny, [(ids, w)], "token", 1, float(w[1:].sum()))
            masked = [(i, w2 if j == k else np.zeros_like(w2)) for j, (i, w2) in enumerate(samples)]
            packed = _loss(tiny, masked, "token", 1, float(w[1:].sum()))
            assert abs(float(alone) - float(packed)) < 1e-5, (k, float(alone), float(packed))


def _grads(model, micro_batches, norm):
    every = [w for mb in micro_batches for _, w in mb]
    n, wsum = step_totals(every)
    model.zero_grad()
    for mb in micro_batches:
        _loss(model, mb, norm, n, wsum).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).clone()


@pytest.mark.parametrize("norm", ["sequence", "token"])
def test_gradient_invariant_to_packing_micro_batches_and_ranks(tiny, norm):
    s = _samples(6, seed=1)
    tiny.train()
    reference = _grads(tiny, [s], norm)  # one pack
    repacked = _grads(tiny, [[s[5], s[2], s[0]], [s[1], s[4], s[3]]], norm)  # other packs
    micro = _grads(tiny, [[x] for x in s], norm)  # six micro-batches
    # Two ranks: each backprops its share; the all-reduce sums the gradients.
    every = [w for _, w in s]
    n, wsum = step_totals(every)
    tiny.zero_grad()
    for mb in ([s[0], s[1]], [s[2]]):
        _loss(tiny, mb, norm, n, wsum).backward()
    g0 = torch.cat([p.grad.flatten() for p in tiny.parameters() if p.grad is not None]).clone()
    tiny.zero_grad()
    for mb in ([s[3], s[4], s[5]],):
        _loss(tiny, mb, norm, n, wsum).backward()
    g1 = torch.cat([p.grad.flatten() for p in tiny.parameters() if p.grad is not None]).clone()
    tiny.eval()
    for other in (repacked, micro, g0 + g1):
        assert torch.allclose(reference, other, rtol=1e-4, atol=1e-7), (reference - other).abs().max()


def test_mean_of_means_would_differ(tiny):
    """Sanity: the naive per-pack mean gives a different gradient, so the tests above can fail."""
    s = _samples(4, seed=2)
    tiny.train()
    good = _grads(tiny, [[s[0]], [s[1], s[2], s[3]]], "token")
    tiny.zero_grad()
    for mb in ([s[0]], [s[1], s[2], s[3]]):
        n, wsum = step_totals([w for _, w in mb])
        (_loss(tiny, mb, "token", n, wsum) / 2).backward()
    naive = torch.cat([p.grad.flatten() for p in tiny.parameters() if p.grad is not None])
    tiny.eval()
    assert not torch.allclose(good, naive, rtol=1e-3)


def test_chunked_loss_matches_full_cross_entropy():
    torch.manual_seed(0)
    hidden, head = torch.randn(300, 16, requires_grad=True), torch.randn(50, 16)
    targets, weights = torch.randint(0, 50, (300,)), torch.rand(300)
    full = (torch.nn.functional.cross_entropy(hidden @ head.T, targets, reduction="none") * weights).sum()
    chunked = weighted_loss(hidden, head, targets, weights, chunk_tokens=64)
    assert torch.allclose(full, chunked, rtol=1e-5)
    g1 = torch.autograd.grad(full, hidden)[0]
    g2 = torch.autograd.grad(weighted_loss(hidden, head, targets, weights, chunk_tokens=64), hidden)[0]
    assert torch.allclose(g1, g2, rtol=1e-5, atol=1e-7)
