"""Lengthwise attention: explicit boundaries, no [L, L] tensor anywhere, long packs train exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from trainer.attention import cu_seqlens_from_lengths, document_ids, varlen_attention
from trainer.batch import collate


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an op produced."""

    def __init__(self):
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.numel = max(self.numel, t.numel())
        return out


def test_varlen_sdpa_equals_a_dense_block_diagonal_reference():
    torch.manual_seed(0)
    lengths = [5, 17, 1, 9]
    T = sum(lengths)
    q, k, v = torch.randn(1, 4, T, 8), torch.randn(1, 2, T, 8), torch.randn(1, 2, T, 8)
    cu = cu_seqlens_from_lengths(lengths)
    assert cu.tolist() == [0, 5, 22, 23, 32] and cu.dtype == torch.int32
    doc = document_ids(cu)
    allowed = (doc[:, None] == doc[None, :]) & torch.ones(T, T, dtype=torch.bool).tril()
    ref = F.scaled_dot_product_attention(
        q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), attn_mask=allowed, scale=0.3
    )
    out = varlen_attention(q, k, v, cu, max(lengths), scale=0.3)
    assert torch.allclose(out, ref, atol=1e-6)
    with pytest.raises(ValueError, match="ends at"):
        varlen_attention(q, k, v, cu_seqlens_from_lengths([5, 5]))


@pytest.fixture(scope="module")
def lora_tiny(tiny_model):
    from transformers import AutoModelForCausalLM

    from trainer.config import LoraSettings
    from trainer.model import add_lora, enable_checkpointing, pick_attention

    def build(attn):
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation=attn)
        base.config.use_cache = False
        model = add_lora(base, LoraSettings(r=4, alpha=8), 10)
        enable_checkpointing(model)
        return model

    return build, pick_attention("auto", torch.device("cpu"))


def _pack(lengths, vocab=1000, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for n in lengths:
        w = np.zeros(n, np.float32)
        w[n // 2 :] = 1.0
        out.append((rng.integers(3, vocab, n), w))
    return out


def _step(model, samples, k=None):
    """Loss of one pack (weighting only sample k when given) and its backward."""
    from trainer.loss import weighted_loss
    from trainer.model import batch_hidden_and_head

    masked = [(i, w if k is None or j == k else np.zeros_like(w)) for j, (i, w) in enumerate(samples)]
    total = sum(float(w[1:].sum()) for _, w in (samples if k is None else [samples[k]]))
    batch = collate(masked, "token", 1, total)
    hidden, head = batch_hidden_and_head(model, batch)
    return weighted_loss(hidden, head, batch.targets, batch.target_weights, 1024)


def test_16k_pack_trains_with_no_quadratic_tensor_and_exact_per_sample_losses(lora_tiny):
    """A LoRA step on a 16K-token pack of five samples: no tensor anywhere near L x L, and every
    sample's loss in the pack equals its loss alone (64K runs in benchmarks/trainer_cpu.py)."""
    build, attn = lora_tiny
    model = build(attn)
    samples = _pack([5000, 4000, 3000, 2500, 1884])
    T = sum(len(i) for i, _ in samples)
    assert T == 16384
    spy = LargestTensor()
    with spy:
        loss = _step(model, samples)
        loss.backward()
    assert spy.numel < T * T / 64, spy.numel  # the dense mask alone would be T * T
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)
    model.eval()
    with torch.no_grad():
        for k in (0, 4):
            alone = float(_step(model, [samples[k]]))
            packed = float(_step(model, samples, k))
            assert packed == pytest.approx(alone, rel=1e-5), k


def test_transformers_dense_mask_path_would_fail_the_size_check(lora_tiny):
    """Control: transformers' own SDPA infers the packs from position resets with an [L, L] mask."""
    build, _ = lora_tiny
    model = build("sdpa")
    samples = _pack([700, 600, 748])
    spy = LargestTensor()
    with spy, torch.no_grad():
        _step(model, samples)
    assert spy.numel >= 2048 * 2048


def test_padded_batches_and_generation_fall_back_to_transformers_sdpa_exactly():
    """Outside training packs (evaluation, stage gates) the model behaves exactly like stock SDPA."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from trainer.model import pick_attention

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=500, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2)
    stock = LlamaForCausalLM(cfg).eval()
    ours = LlamaForCausalLM(cfg).eval()
    ours.load_state_dict(stock.state_dict())
    ours.config._attn_implementation = pick_attention("sdpa", torch.device("cpu"))
    ids = torch.randint(3, 499, (2, 20))
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # left padding
    with torch.no_grad():
        a = stock(input_ids=ids, attention_mask=mask).logits
        b = ours(input_ids=ids, attention_mask=mask).logits
        assert (a - b)[mask.bool()].abs().max() == 0
        kw = dict(attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
        assert torch.equal(stock.generate(input_ids=ids, **kw), ours.generate(input_ids=ids, **kw))
