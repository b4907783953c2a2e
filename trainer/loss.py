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
