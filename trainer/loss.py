"""Weighted cross-entropy in chunks: never materialises fp32 logits for a whole long pack."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def _chunk_loss(
    hidden: torch.Tensor, head_weight: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    logits = F.linear(hidden, head_weight).float()
    ce = F.cross_entropy(logits, targets, reduction="none")
    return (ce * weights).sum()


def weighted_loss(
    hidden: torch.Tensor,
    head_weight: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    chunk_tokens: int = 2048,
) -> torch.Tensor:
    """``sum_t weights[t] * CE(head(hidden[t]), targets[t])`` computed chunk by chunk.

    Each chunk's logits are recomputed in the backward pass (activation checkpointing), so peak
    memory holds one chunk of logits, not ``T x vocab``. Positions with zero weight are skipped.
    """
    hidden = hidden.reshape(-1, hidden.shape[-1])
    keep = weights != 0
    if not bool(keep.any()):
        return hidden.sum() * 0.0  # keeps the graph connected (DDP needs every parameter used)
    hidden, targets, weights = hidden[keep], targets[keep], weights[keep]
    total = hidden.new_zeros((), dtype=torch.float32)
    for s in range(0, hidden.shape[0], chunk_tokens):
        sl = slice(s, s + chunk_tokens)
        total = total + checkpoint(
            _chunk_loss, hidden[sl], head_weight, targets[sl], weights[sl], use_reentrant=False
        )
    return total


def adalora_orthogonal_penalty(model) -> torch.Tensor | None:
    """AdaLoRA's orthogonal regulariser, as peft adds it in ``AdaLoraModel.forward`` when labels are given.

    ``orth_reg_weight * mean over lora_A/lora_B of ||P P^T - I||_F`` (``P^T P`` for lora_B). The trainer
    computes its loss from hidden states, not through that forward, so it adds this term itself.
    None for models without an AdaLoRA adapter.
    """
    from peft.tuners.adalora import AdaLoraModel

    tuner = getattr(model, "base_model", None)
    if not isinstance(tuner, AdaLoraModel):
        return None
    name = tuner.trainable_adapter_name
    weight = tuner.peft_config[name].orth_reg_weight
    terms = []
    for n, p in tuner.model.named_parameters():
        if ("lora_A" in n or "lora_B" in n) and name in n:
            cov = p @ p.T if "lora_A" in n else p.T @ p
            eye = torch.eye(*cov.shape, dtype=cov.dtype, device=cov.device)
            terms.append(torch.linalg.matrix_norm(cov - eye, ord="fro"))
    if not terms:
        return None
    return weight * torch.stack(terms).mean()
