"""Packed-sample attention from explicit boundaries: each document attends only to itself, causally.

Sample boundaries are passed with every pack (``cu_seqlens``, as the collator emits them), never
inferred from position resets, and no ``[L, L]`` mask is ever built:

* ``flash``: FlashAttention-2 ``flash_attn_varlen_func`` (CUDA, the ``flash`` extra);
* ``flex``: ``torch.nn.attention.flex_attention`` with a document ``BlockMask`` (CUDA, compiled);
* ``sdpa``: one ``F.scaled_dot_product_attention(is_causal=True)`` per document (any device; on CPU
  this takes the memory-efficient kernel, so memory is linear in the pack length).

The core call, which sequence-parallel code can wrap (all heads local, whole pack local)::

    varlen_attention(q, k, v, cu_seqlens, max_seqlen, scale=None, backend="sdpa") -> out
    # q: [1, H, T, D]; k, v: [1, Hkv, T, D] with H % Hkv == 0 (GQA); cu_seqlens: int32 [n + 1],
    # cu_seqlens[0] == 0, cu_seqlens[-1] == T; out: [1, H, T, D] (like SDPA's output layout)

``register()`` makes the three backends available to transformers models as
``attn_implementation="lengthwise_<backend>"``. The model then reads ``cu_seq_lens_q`` /
``max_length_q`` from the forward kwargs (see ``trainer.model.hidden_and_head``). Their mask hook
returns no mask when there is no padding mask, so transformers never expands the packed
position_ids into a dense ``[1, 1, L, L]`` mask. Without ``cu_seq_lens_q`` (generation, evaluation)
the call falls back to transformers' own SDPA with its usual masks, and refuses packed position_ids.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BACKENDS = ("sdpa", "flash", "flex")
PREFIX = "lengthwise_"


def attn_name(backend: str) -> str:
    """The ``attn_implementation`` name of a backend."""
    return PREFIX + backend


def backend_of(attn_implementation: str) -> str | None:
    """The backend behind a registered name, or None for transformers' own implementations."""
    if attn_implementation and attn_implementation.startswith(PREFIX):
        return attn_implementation[len(PREFIX) :]
    return None


def flash_available() -> bool:
    """Whether the ``flash_attn`` package (FlashAttention-2) can be imported."""
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        return False
    return True


def auto_backend(device: torch.device) -> str:
    """FlashAttention-2 on CUDA when installed, else flex attention on CUDA, else per-document SDPA."""
    if device.type == "cuda":
        return "flash" if flash_available() else "flex"
    return "sdpa"


def cu_seqlens_from_lengths(lengths: list[int], device=None) -> torch.Tensor:
    """``[0, l1, l1 + l2, ..., T]`` as int32 (the FlashAttention varlen convention)."""
    cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(torch.as_tensor(lengths, dtype=torch.int64), 0).to(torch.int32)
    return cu.to(device) if device is not None else cu


def document_ids(cu_seqlens: torch.Tensor) -> torch.Tensor:
    """Per-token document index ``[T]`` from ``cu_seqlens``."""
    lengths = cu_seqlens[1:] - cu_seqlens[:-1]
    return torch.repeat_interleave(torch.arange(len(lengths), device=cu_seqlens.device), lengths.long())


class _OneEntryCache:
    """One value per boundary tensor object (a host copy, a BlockMask), built once per pack.

    Every layer of a forward, and its checkpointed recompute, gets the same ``cu_seqlens`` tensor.
    """

    def __init__(self) -> None:
        self.key: torch.Tensor | None = None
        self.value = None

    def get(self, cu: torch.Tensor, make):
        if self.key is not cu:  # holding the reference keeps identity meaningful (no address reuse)
            self.key, self.value = cu, make(cu)
        return self.value


_HOST = _OneEntryCache()
_BLOCK = _OneEntryCache()
_FLEX = None


def _check(q: torch.Tensor, k: torch.Tensor, cu: torch.Tensor) -> None:
    if q.shape[0] != 1:
        raise ValueError(f"varlen attention takes one packed row (batch 1), got batch {q.shape[0]}")
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"{q.shape[1]} query heads are not a multiple of {k.shape[1]} key/value heads")
    if cu.dim() != 1 or cu.numel() < 2:
        raise ValueError("cu_seqlens must be a 1-D tensor [0, ..., T] with at least one document")


def _sdpa(q, k, v, cu, scale):
    bounds = _HOST.get(cu, lambda c: c.tolist())
    if bounds[-1] != q.shape[2]:
        raise ValueError(f"cu_seqlens ends at {bounds[-1]} but the pack has {q.shape[2]} tokens")
    groups = q.shape[1] // k.shape[1]
    outs = []
    for s, e in zip(bounds[:-1], bounds[1:], strict=True):
        kd, vd = k[:, :, s:e], v[:, :, s:e]
        if groups > 1:  # repeat per document: at most one document's K/V are ever expanded
            kd, vd = kd.repeat_interleave(groups, 1), vd.repeat_interleave(groups, 1)
        outs.append(F.scaled_dot_product_attention(q[:, :, s:e], kd, vd, is_causal=True, scale=scale))
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


def _flash(q, k, v, cu, max_seqlen, scale):
    from flash_attn import flash_attn_varlen_func

    dtype = q.dtype
    half = dtype if dtype in (torch.float16, torch.bfloat16) else torch.bfloat16  # FA2 has no fp32
    qf, kf, vf = (t[0].transpose(0, 1).to(half) for t in (q, k, v))  # [T, H, D]
    cu = cu.to(device=q.device, dtype=torch.int32)
    if max_seqlen is None:
        max_seqlen = int((cu[1:] - cu[:-1]).max())
    out = flash_attn_varlen_func(
        qf, kf, vf, cu, cu, int(max_seqlen), int(max_seqlen), softmax_scale=scale, causal=True
    )
    return out.transpose(0, 1)[None].to(dtype)


def _block_mask(cu: torch.Tensor, total: int, device):
    from torch.nn.attention.flex_attention import create_block_mask

    doc = document_ids(cu.to(device))

    def same_doc_causal(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (doc[q_idx] == doc[kv_idx])

    return create_block_mask(same_doc_causal, None, None, total, total, device=device)


def _flex(q, k, v, cu, scale):
    global _FLEX
    from torch.nn.attention.flex_attention import flex_attention

    if _FLEX is None:  # compiled once: uncompiled flex materialises the full score matrix
        _FLEX = torch.compile(flex_attention) if q.device.type == "cuda" else flex_attention
    mask = _BLOCK.get(cu, lambda c: _block_mask(c, q.shape[2], q.device))
    return _FLEX(q, k, v, block_mask=mask, scale=scale, enable_gqa=q.shape[1] != k.shape[1])


def varlen_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_seqlen: int | None = None,
    scale: float | None = None,
    backend: str = "sdpa",
) -> torch.Tensor:
    """Causal attention within each document of one packed row; see the module docstring for shapes."""
    _check(q, k, cu_seqlens)
    if backend == "sdpa":
        return _sdpa(q, k, v, cu_seqlens, scale)
    if backend == "flash":
        return _flash(q, k, v, cu_seqlens, max_seqlen, scale)
    if backend == "flex":
        return _flex(q, k, v, cu_seqlens, scale)
    raise ValueError(f"unknown attention backend {backend!r}; one of {BACKENDS}")


def _refuse_inferred_packing(kwargs: dict, q_len: int) -> None:
    pos = kwargs.get("position_ids")
    if (
        pos is not None
        and q_len > 1
        and pos.shape[-1] == q_len
        and bool((pos[..., 1:] <= pos[..., :-1]).any())
    ):
        raise ValueError(
            "packed position_ids without cu_seq_lens_q: lengthwise attention never infers sample "
            "boundaries; pass cu_seq_lens_q/max_length_q (trainer.model.hidden_and_head does)"
        )


def forward_for(backend: str):
    """The attention-interface function of ``backend`` (packs by ``cu_seq_lens_q``, SDPA otherwise)."""

    def attention_forward(
        module,
        query,
        key,
        value,
        attention_mask,
        dropout: float = 0.0,
        scaling: float | None = None,
        cu_seq_lens_q: torch.Tensor | None = None,
        max_length_q: int | None = None,
        sliding_window: int | None = None,
        softcap: float | None = None,
        **kwargs,
    ):
        if cu_seq_lens_q is None or query.shape[2] != key.shape[2]:  # not a training pack
            from transformers.integrations.sdpa_attention import sdpa_attention_forward

            if attention_mask is None:
                _refuse_inferred_packing(kwargs, query.shape[2])
            return sdpa_attention_forward(
                module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
            )
        if sliding_window is not None and (max_length_q is None or sliding_window < int(max_length_q)):
            raise ValueError(
                f"{type(module).__name__} uses a sliding window of {sliding_window} tokens, which lengthwise "
                "attention does not implement; set use_sliding_window/sliding_window off in the model config"
            )
        if softcap is not None:
            raise ValueError("attention logit softcapping is not supported by lengthwise attention")
        if dropout:
            raise ValueError("attention dropout is not supported by lengthwise attention; set it to 0")
        out = varlen_attention(query, key, value, cu_seq_lens_q, max_length_q, scaling, backend)
        return out.transpose(1, 2).contiguous(), None

    attention_forward.__name__ = f"{PREFIX}{backend}_attention_forward"
    return attention_forward


def mask_hook(**kwargs):
    """No mask for a training pack; transformers' SDPA mask otherwise (padding, generation with a cache).

    A pack's boundaries travel as cu_seqlens, so the position-reset packing transformers may detect is
    never expanded to [L, L].
    """
    offset = kwargs.get("q_offset") or 0
    plain = kwargs.get("attention_mask") is None and kwargs.get("q_length") == kwargs.get("kv_length")
    if plain and isinstance(offset, int) and offset == 0:
        return None
    from transformers.masking_utils import sdpa_mask

    return sdpa_mask(**kwargs)


def register() -> None:
    """Register ``lengthwise_sdpa``, ``lengthwise_flash`` and ``lengthwise_flex`` with transformers."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    for backend in BACKENDS:
        AttentionInterface.register(attn_name(backend), forward_for(backend))
        AttentionMaskInterface.register(attn_name(backend), mask_hook)
