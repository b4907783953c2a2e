"""Base model, LoRA (peft), RoPE changes, and the forward pass that feeds the chunked loss."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from trainer import quantize
from trainer import rope as rope_utils
from trainer.config import LoraSettings, RopeConfig, TrainConfig
from trainer.rope import ROPE_FILE, rebuild_rotary  # noqa: F401  (re-exported: older imports)

log = logging.getLogger(__name__)
NORM_NAMES = ["input_layernorm", "post_attention_layernorm", "norm"]


def pick_attention(requested: str, device: torch.device) -> str:
    """The ``attn_implementation`` for ``requested`` (a ``TrainConfig.attn_implementation`` value).

    ``auto``: FlashAttention-2 varlen when installed on CUDA, else flex attention with a document
    BlockMask on CUDA, else per-document SDPA (CPU). ``sdpa`` / ``flash_attention_2`` /
    ``flex_attention`` force one of those lengthwise paths (all read explicit sample boundaries, see
    ``trainer.attention``); ``eager`` is transformers' own eager attention, which infers boundaries
    from position resets with a dense ``[L, L]`` mask (for comparison only).
    """
    from trainer import attention

    attention.register()
    if requested == "eager":
        return "eager"
    backend = {"auto": None, "sdpa": "sdpa", "flash_attention_2": "flash", "flex_attention": "flex"}[requested]
    backend = backend or attention.auto_backend(device)
    if backend == "flash" and not (device.type == "cuda" and attention.flash_available()):
        raise ValueError(
            "attn_implementation flash_attention_2 needs a CUDA device and the flash_attn package "
            "(pip install 'lengthwise[flash]'); use auto to pick flex attention or SDPA"
        )
    if backend == "flex" and device.type != "cuda":
        raise ValueError("attn_implementation flex_attention needs CUDA (flex has no CPU backward); use sdpa")
    return attention.attn_name(backend)


def weights_dtype(precision: str, device: torch.device) -> torch.dtype:
    """bf16 weights for ``bf16`` (and ``auto`` on CUDA), else fp32."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return torch.float32


def load_base(cfg: TrainConfig, device: torch.device):
    """The base causal LM in train mode (safetensors only), on ``device``."""
    if cfg.precision == "bf16" and device.type == "cpu":
        log.warning(
            "precision=bf16 on CPU: autocast can be far slower than fp32 on CPUs without fast bf16 "
            "kernels; precision=auto picks fp32 on CPU"
        )
    from transformers import AutoModelForCausalLM

    from pipeline.assets import resolve_model

    path = resolve_model(cfg.model)
    from pipeline.assets import MODEL_LOAD_LOCK

    with MODEL_LOAD_LOCK:
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=weights_dtype(cfg.precision, device),
            use_safetensors=True,
            attn_implementation=pick_attention(cfg.attn_implementation, device),
            trust_remote_code=cfg.trust_remote_code,
            **quantize.load_kwargs(cfg, device),
        )
    if cfg.quantize is None:
        model.to(device)  # a quantized model is placed by device_map and cannot move
    model = quantize.prepare(model, cfg)
    model.config.use_cache = False
    return model, path


def apply_rope(model, rope: RopeConfig | None) -> dict | None:
    """Compose ``rope`` with the model's current RoPE (see ``trainer.rope``); returns the parameters."""
    if rope is None:
        return None
    state = rope_utils.compose(rope_utils.base_state(model.config), rope)
    rope_utils.apply(model, state)
    return state.params


def add_lora(model, lora: LoraSettings, total_steps: int):
    """Wrap ``model`` with a LoRA (or AdaLoRA) adapter; LoRA+ also trains embeddings and norms."""
    from peft import AdaLoraConfig, LoraConfig, get_peft_model

    save = (["embed_tokens", *NORM_NAMES]) if lora.plus else None
    if lora.adalora:
        cfg = AdaLoraConfig(
            init_r=lora.r,
            target_r=max(1, lora.r // 2),
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.targets,
            total_step=max(total_steps, 10),
            modules_to_save=save,
            task_type="CAUSAL_LM",
        )
    else:
        tied = bool(getattr(model.config, "tie_word_embeddings", False))
        extra = {"ensure_weight_tying": True} if lora.plus and tied else {}
        cfg = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.targets,
            modules_to_save=save,
            task_type="CAUSAL_LM",
            **extra,
        )
    peft_model = get_peft_model(model, cfg)
    if lora.plus:
        keep_extras_fp32(peft_model)
    return peft_model


def keep_extras_fp32(peft_model) -> None:
    """LoRA+ norms and embeddings train as fp32 parameters (so AdamW keeps fp32 state for them).

    On a bf16 base their bf16 copies would round every small update away. Their outputs are cast back
    to the base dtype, so the activations (and checkpointed hidden states) stay bf16.
    """
    from peft.utils.other import ModulesToSaveWrapper

    for module in peft_model.modules():
        if not isinstance(module, ModulesToSaveWrapper):
            continue
        params = list(module.modules_to_save.parameters())
        compute = params[0].dtype if params else torch.float32
        for p in params:
            p.data = p.data.float()
            p.requires_grad_(True)
        if compute != torch.float32:
            module.register_forward_hook(_cast_output(compute))


def _cast_output(dtype: torch.dtype):
    def hook(module, args, output):
        return output.to(dtype) if torch.is_tensor(output) and output.is_floating_point() else output

    return hook


def enable_checkpointing(model, offload: bool = False) -> None:
    """Non-reentrant activation checkpointing (needs train mode, or it silently does nothing).

    ``offload`` keeps the saved layer inputs in pinned host memory: at 32K+ tokens they dominate GPU memory.
    """
    model.train()
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}, offload=offload
        )
    else:  # transformers < 5.2
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()


def hidden_and_head(
    model,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    cu_seqlens: torch.Tensor | None = None,
    max_seqlen: int | None = None,
):
    """Final hidden states of the decoder and the output projection weight (no logits computed).

    ``cu_seqlens`` (from :class:`trainer.batch.PackedBatch`) carries the sample boundaries of a pack to
    the attention as transformers' varlen kwargs; without it the row is one sequence.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder()
    extra = {}
    if cu_seqlens is not None:
        if max_seqlen is None:
            max_seqlen = int((cu_seqlens[1:] - cu_seqlens[:-1]).max())
        extra = dict(
            cu_seq_lens_q=cu_seqlens, cu_seq_lens_k=cu_seqlens, max_length_q=max_seqlen, max_length_k=max_seqlen
        )
    out = decoder(input_ids=input_ids, position_ids=position_ids, attention_mask=None, use_cache=False, **extra)
    return out.last_hidden_state, base.get_output_embeddings().weight


def batch_hidden_and_head(model, batch):
    """:func:`hidden_and_head` for a :class:`trainer.batch.PackedBatch` (boundaries passed along)."""
    return hidden_and_head(model, batch.input_ids, batch.position_ids, batch.cu_seqlens, batch.max_seqlen)


def save_adapter(model, path: Path, rope_state=None, base_rope=None, state_dict: dict | None = None) -> None:
    """Save the adapter (safetensors) and, when changed, the RoPE parameters it was trained with.

    ``state_dict``: the gathered trainable weights when the model's own are FSDP2 shards.
    """
    model.save_pretrained(str(path), safe_serialization=True, state_dict=state_dict)
    if isinstance(rope_state, dict):  # a bare rope_parameters dict (older callers)
        (Path(path) / ROPE_FILE).write_text(json.dumps(rope_state, indent=2))
    elif rope_state is not None and base_rope is not None:
        rope_utils.save(Path(path), rope_state, base_rope)


def load_adapter(base_path: str, adapter_dir: str | Path, device: str = "cpu", dtype=torch.float32):
    """Base model + saved adapter, with the adapter's RoPE settings applied first."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from pipeline.assets import MODEL_LOAD_LOCK

    with MODEL_LOAD_LOCK:
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype, use_safetensors=True).to(device)
    state = rope_utils.load(Path(adapter_dir), base.config)
    if state is not None:
        rope_utils.apply(base, state)
    return PeftModel.from_pretrained(base, str(adapter_dir)).eval()
