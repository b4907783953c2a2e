"""Ulysses sequence parallelism: each rank of a group holds a slice of a pack's tokens.

Around attention, an all-to-all turns ``[B, H, L/N, D]`` (all heads, my tokens) into ``[B, H/N, L, D]``
(my heads, all tokens); attention runs per document over the whole pack with the pack's own
boundaries; a second all-to-all turns the result back. Everything else in the model is per token,
so it runs on the slice unchanged. Both all-to-alls are autograd-aware
(torch's functional ``all_to_all_single_autograd``), so LoRA gradients flow across ranks.

Why our own layer (details in docs/parallel.md): DeepSpeed ALST's ``UlyssesSPAttentionHF`` is
wired into the DeepSpeed engine (its process-group object goes to ``deepspeed.initialize``, ZeRO in
place of FSDP2); yunchang is built around flash-attn kernels (CUDA); torch's experimental
``context_parallel`` is ring attention over SDPA without document boundaries (only flex masks, which
have no CPU backward). None fits FSDP2 + our per-document attention on the gloo/CPU test path; this
module is two autograd-aware collectives around ``trainer.attention.varlen_attention`` (the same
FlashAttention-2 / flex / per-document SDPA call a single rank makes).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.distributed as dist

from trainer.attention import cu_seqlens_from_lengths, forward_for, mask_hook, varlen_attention

NAME = "lengthwise_ulysses"


@dataclass
class _Active:
    group: dist.ProcessGroup
    size: int
    cu_seqlens: torch.Tensor  # document boundaries of the whole (padded) pack, int32 [n + 1]
    max_seqlen: int
    backend: str  # trainer.attention backend run on the gathered heads (sdpa, flash, flex)


_ACTIVE: _Active | None = None
_SINGLE = forward_for("sdpa")  # attention outside a pass; set by register()


def _all_to_all(x: torch.Tensor, scatter_dim: int, gather_dim: int, group, size: int) -> torch.Tensor:
    """Split ``x`` along ``scatter_dim`` over the group and concatenate what arrives along ``gather_dim``."""
    from torch.distributed._functional_collectives import all_to_all_single_autograd, wait_tensor

    send = torch.stack([c.contiguous() for c in x.chunk(size, dim=scatter_dim)])  # chunk i -> rank i
    recv = wait_tensor(all_to_all_single_autograd(send, None, None, group))
    return torch.cat(list(recv.unbind(0)), dim=gather_dim)


def ulysses_attention(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0, **kwargs):
    """Attention-interface function: head-sharded per-document attention inside a sequence-parallel pass.

    Outside :func:`sharded` (one rank's whole pack, evaluation, generation, the isolation check) it is
    the single-rank lengthwise attention of the registered backend, exactly as without sequence
    parallelism.
    """
    state = _ACTIVE
    if state is None:
        return _SINGLE(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    n, group = state.size, state.group
    if key.shape[1] % n:  # fewer KV heads than ranks: give every rank its own copy of the groups it needs
        rep = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(rep, dim=1), value.repeat_interleave(rep, dim=1)
    if query.shape[1] % n:
        raise ValueError(
            f"parallel.sequence={n} needs the number of attention heads ({query.shape[1]}) divisible by it"
        )
    # [B, H, L/n, D] -> [B, H/n, L, D]
    q, k, v = (_all_to_all(t, 1, 2, group, n) for t in (query, key, value))
    out = varlen_attention(q, k, v, state.cu_seqlens, state.max_seqlen, scaling, state.backend)
    out = out.transpose(1, 2).contiguous()  # [B, H/n, L, D] -> [B, L, H/n, D]
    # [B, L, H/n, D] -> [B, L/n, H, D]
    return _all_to_all(out, 1, 2, group, n), None


def ulysses_mask(**kwargs):
    """Mask-interface function: none inside a sequence-parallel pass, lengthwise's mask hook otherwise.

    Inside, the pack's boundaries come from ``cu_seqlens`` and no L x L tensor is built.
    """
    if _ACTIVE is not None:
        return None
    return mask_hook(**kwargs)


def register(backend: str = "sdpa") -> str:
    """Register the attention and mask functions with transformers' interfaces; returns their name.

    ``backend`` (sdpa, flash, flex) runs on the gathered heads inside a pass and on its own outside.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    global _SINGLE
    _SINGLE = forward_for(backend)
    AttentionInterface.register(NAME, ulysses_attention)
    AttentionMaskInterface.register(NAME, ulysses_mask)
    return NAME


@contextlib.contextmanager
def sharded(group: dist.ProcessGroup, size: int, cu_seqlens: list[int], backend: str = "sdpa"):
    """Make attention sequence-parallel for the forward and backward passes run inside.

    ``backend`` is the one the model would use without sequence parallelism (FlashAttention-2
    varlen or flex on CUDA, per-document SDPA on CPU): after the all-to-all each rank holds whole
    documents for its heads, so the same varlen call applies. One boundary tensor per pack, so
    every layer (and the checkpointed recompute) reuses its host copy or BlockMask.
    """
    global _ACTIVE
    lengths = [b - a for a, b in zip(cu_seqlens[:-1], cu_seqlens[1:], strict=True)]
    cu = cu_seqlens_from_lengths(lengths)
    state = _Active(group, size, cu, max(lengths), backend)
    previous, _ACTIVE = _ACTIVE, state
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
