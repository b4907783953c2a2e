"""Startup proof that packed samples do not see each other: per-sample loss packed == alone.

It always runs on a two-sample pack (built from the data, or from random tokens when the data has
fewer than two rows), never silently skips, computes in fp32 whatever the weights' dtype (a bf16
model is upcast one module at a time, so the extra memory is one layer's weights), and uses a
tolerance that follows the dtype the attention really computes in (FlashAttention-2 has no fp32).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import numpy as np
import torch

from trainer.attention import backend_of
from trainer.batch import collate
from trainer.loss import weighted_loss
from trainer.model import batch_hidden_and_head

log = logging.getLogger(__name__)
# Relative tolerance on a per-sample loss, by the dtype attention computes in.
TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-3, torch.bfloat16: 1e-2}


class IsolationError(RuntimeError):
    """Packed samples attend to each other."""


@contextlib.contextmanager
def fp32_compute(model: torch.nn.Module) -> Iterator[None]:
    """Run ``model`` in fp32: each module's non-fp32 weights are upcast just for its own forward.

    bf16 -> fp32 -> bf16 is exact, so the weights are unchanged afterwards.
    """
    handles = []

    def up(module, args):
        module._lw_dtypes = {n: p.dtype for n, p in module.named_parameters(recurse=False)}
        for p in module.parameters(recurse=False):
            p.data = p.data.float()

    def down(module, args, output):
        for n, p in module.named_parameters(recurse=False):
            p.data = p.data.to(module._lw_dtypes[n])
        del module._lw_dtypes

    for module in model.modules():
        if any(p.dtype != torch.float32 for p in module.parameters(recurse=False)):
            handles += [module.register_forward_pre_hook(up), module.register_forward_hook(down)]
    try:
        with torch.autocast(next(model.parameters()).device.type, enabled=False):
            yield
    finally:
        for h in handles:
            h.remove()


def two_samples(candidates: list[np.ndarray], max_tokens: int, vocab: int, seed: int = 0) -> list[np.ndarray]:
    """Two token sequences that fit one pack of ``max_tokens``: from ``candidates``, padded with random ones."""
    each = max(8, min(512, max_tokens // 2))
    picked = [np.asarray(c[:each], dtype=np.int64) for c in candidates if len(c) >= 8][:2]
    rng = np.random.default_rng(seed)
    while len(picked) < 2:
        picked.append(rng.integers(3, max(4, vocab - 1), each))
    return picked


def _sample_loss(model, ids: list[np.ndarray], k: int, device) -> float:
    """Mean next-token loss of sample ``k`` when the pack holds ``ids`` (other samples weighted 0)."""
    weights = [np.ones(len(x), np.float32) if j == k else np.zeros(len(x), np.float32) for j, x in enumerate(ids)]
    batch = collate(list(zip(ids, weights, strict=True)), "token", 1, float(len(ids[k]) - 1)).to(device)
    hidden, head = batch_hidden_and_head(model, batch)
    return float(weighted_loss(hidden.float(), head.float(), batch.targets, batch.target_weights))


def prove_isolation(model, samples: list[np.ndarray], device) -> dict:
    """Compare each sample's loss alone and packed with the other; raise :class:`IsolationError` if they differ."""
    if len(samples) != 2:
        raise ValueError("the isolation proof needs exactly two samples")
    impl = model.config._attn_implementation
    attn_dtype = torch.bfloat16 if backend_of(impl) == "flash" else torch.float32
    tol = TOLERANCE[attn_dtype]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), fp32_compute(model):
            alone = [_sample_loss(model, [s], 0, device) for s in samples]
            packed = [_sample_loss(model, samples, k, device) for k in range(2)]
    finally:
        model.train(was_training)
    diffs = [abs(a - p) / max(1.0, abs(a)) for a, p in zip(alone, packed, strict=True)]
    report = {
        "attn_implementation": impl,
        "compute_dtype": str(attn_dtype).removeprefix("torch."),
        "sample_tokens": [len(s) for s in samples],
        "alone": alone,
        "packed": packed,
        "max_rel_diff": max(diffs),
        "tolerance": tol,
    }
    log.info(
        "isolation proof: 2 samples (%s tokens) alone vs packed with %s, %s compute: losses %s vs %s, "
        "max relative diff %.2e (tolerance %.0e)",
        report["sample_tokens"], impl, report["compute_dtype"],
        [round(x, 6) for x in alone], [round(x, 6) for x in packed], report["max_rel_diff"], tol,
    )
    if max(diffs) > tol:
        raise IsolationError(
            f"packed samples leak attention: per-sample loss alone {alone} vs packed {packed} "
            f"(relative diff {max(diffs):.2e} > {tol:.0e}) with attn_implementation={impl}; use "
            "attn_implementation auto/sdpa/flex_attention/flash_attention_2 (lengthwise attention)"
        )
    return report
