"""Ulysses sequence parallelism: each rank of a group holds a slice of a pack's tokens.

Around attention, an all-to-all turns ``[B, H, L/N, D]`` (all heads, my tokens) into ``[B, H/N, L, D]``
(my heads, all tokens); attention runs per document over the whole pack with the pack's own
boundaries; a second all-to-all turns the result back. Everything else in the model is per token,
so it runs on the slice unchanged. Both all-to-alls are autograd-aware
(torch's functional ``all_to_all_single_autograd``), so LoRA gradients flow across ranks.

Why our own layer: DeepSpeed ALST's ``UlyssesSPAttentionHF`` needs the DeepSpeed engine and its
communication layer (CUDA builds), yunchang targets flash-attn on NCCL, and torch's
``context_parallel`` shards SDPA with ring attention that ignores document boundaries unless flex
attention (no CPU backward) is used. None runs on the gloo/CPU path the tests use; this module is
two collectives and a per-document attention call.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

NAME = "lengthwise_ulysses"


@dataclass
class _Active:
    group: dist.ProcessGroup
    size: int
    cu_seqlens: list[int]  # document boundaries of the whole (padded) pack


_ACTIVE: _Active | None = None


def cu_seqlens_from_positions(position_ids: torch.Tensor) -> list[int]:
    """Document boundaries of a packed row whose positions restart at 0 for every sample."""
    starts = (position_ids[0] == 0).nonzero().flatten().tolist()
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    return [*starts, int(position_ids.shape[1])]


def document_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cu_seqlens: list[int], scaling: float | None
) -> torch.Tensor:
    """Causal attention inside each document of a packed row; ``[B, H, L, D]`` in, ``[B, L, H, D]`` out.

    One SDPA call per document (memory-efficient kernel, no L x L mask), so no token sees another sample.
    """
    if key.shape[1] != query.shape[1]:  # grouped-query attention
        rep = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(rep, dim=1), value.repeat_interleave(rep, dim=1)
    parts = [
        F.scaled_dot_product_attention(
            query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], is_causal=True, scale=scaling
        )
        for a, b in zip(cu_seqlens[:-1], cu_seqlens[1:], strict=True)
        if b > a
    ]
    return torch.cat(parts, dim=2).transpose(1, 2).contiguous()


def _all_to_all(x: torch.Tensor, scatter_dim: int, gather_dim: int, group, size: int) -> torch.Tensor:
    """Split ``x`` along ``scatter_dim`` over the group and concatenate what arrives along ``gather_dim``."""
    from torch.distributed._functional_collectives import all_to_all_single_autograd, wait_tensor

    send = torch.stack([c.contiguous() for c in x.chunk(size, dim=scatter_dim)])  # chunk i -> rank i
    recv = wait_tensor(all_to_all_single_autograd(send, None, None, group))
    return torch.cat(list(recv.unbind(0)), dim=gather_dim)


def ulysses_attention(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0, **kwargs):
    """Attention-interface function: head-sharded per-document attention inside a sequence-parallel pass.

    Outside :func:`sharded` (evaluation, the isolation check, one process) it is plain per-document
    attention over the local row, with boundaries from ``position_ids``.
    """
    del attention_mask, dropout  # boundaries come from cu_seqlens; attention dropout is 0 in these models
    state = _ACTIVE
    if state is None:
        return document_attention(
            query, key, value, cu_seqlens_from_positions(kwargs["position_ids"]), scaling
        ), None
    n, group = state.size, state.group
    if key.shape[1] % n:  # fewer KV heads than ranks: give every rank its own copy of the groups it needs
        rep = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(rep, dim=1), value.repeat_interleave(rep, dim=1)
    if query.shape[1] % n:
        raise ValueError(
            f"sequence parallel {n} needs the number of attention heads ({query.shape[1]}) divisible by it"
        )
    # [B, H, L/n, D] -> [B, H/n, L, D]
    q, k, v = (_all_to_all(t, 1, 2, group, n) for t in (query, key, value))
    out = document_attention(q, k, v, state.cu_seqlens, scaling)  # [B, L, H/n, D]
    # [B, L, H/n, D] -> [B, L/n, H, D]
    return _all_to_all(out, 1, 2, group, n), None


def register() -> str:
    """Register :func:`ulysses_attention` with transformers' attention interface; returns its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, ulysses_attention)
    return NAME


@contextlib.contextmanager
def sharded(group: dist.ProcessGroup, size: int, cu_seqlens: list[int]):
    """Make attention sequence-parallel for the forward and backward passes run inside."""
    global _ACTIVE
    previous, _ACTIVE = _ACTIVE, _Active(group, size, cu_seqlens)
    try:
        yield
    finally:
        _ACTIVE = previous


def pad_to_multiple(batch, size: int):
    """Pad a packed batch with one zero-weight dummy document so its length divides by ``size``."""
    from trainer.batch import PackedBatch

    extra = (-batch.tokens) % size
    if not extra:
        return batch
    dev = batch.input_ids.device
    return PackedBatch(
        torch.cat([batch.input_ids, torch.zeros(1, extra, dtype=batch.input_ids.dtype, device=dev)], 1),
        torch.cat([batch.position_ids, torch.arange(extra, device=dev)[None]], 1),
        torch.cat([batch.targets, torch.zeros(extra, dtype=batch.targets.dtype, device=dev)]),
        torch.cat([batch.target_weights, torch.zeros(extra, dtype=batch.target_weights.dtype, device=dev)]),
        [*batch.seq_lens, extra],
    )


def split(batch, rank: int, size: int):
    """The contiguous token slice for ``rank`` of a (padded) pack, plus the whole pack's boundaries."""
    from trainer.batch import PackedBatch

    batch = pad_to_multiple(batch, size)
    cu = [0]
    for n in batch.seq_lens:
        cu.append(cu[-1] + n)
    per = batch.tokens // size
    sl = slice(rank * per, (rank + 1) * per)
    part = PackedBatch(
        batch.input_ids[:, sl],
        batch.position_ids[:, sl],
        batch.targets[sl],
        batch.target_weights[sl],
        [per],
    )
    return part, cu
