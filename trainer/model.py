"""Base model, LoRA (peft), RoPE changes, and the forward pass that feeds the chunked loss."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from trainer import quantize
from trainer.config import LoraSettings, RopeConfig, TrainConfig

log = logging.getLogger(__name__)
ROPE_FILE = "lengthwise_rope.json"
NORM_NAMES = ["input_layernorm", "post_attention_layernorm", "norm"]


def pick_attention(requested: str, device: torch.device) -> str:
    """The attention implementation that isolates packed samples from position_ids without a mask.

    ``auto``: FlashAttention-2 varlen when installed on CUDA, else flex attention on CUDA (a block-sparse
    mask from the position resets), else SDPA (CPU: transformers builds a block-diagonal causal mask
    per pack, fine at CPU lengths).
    """
    if requested != "auto":
        return requested
    if device.type == "cuda":
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            return "flex_attention"
    return "sdpa"


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
    dtype = torch.bfloat16 if (cfg.precision in ("bf16", "auto") and device.type == "cuda") else torch.float32
    from pipeline.assets import MODEL_LOAD_LOCK

    with MODEL_LOAD_LOCK:
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=dtype,
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
    """Change the model's RoPE for a longer stage and rebuild its rotary tables; returns the parameters."""
    if rope is None:
        return None
    config = model.config
    params = dict(getattr(config, "rope_parameters", None) or {"rope_type": "default"})
    params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    original = params.get("original_max_position_embeddings", config.max_position_embeddings)
    if rope.type == "theta":
        params.update(rope_type="default", rope_theta=rope.theta)
    else:
        params.update(rope_type=rope.type, factor=rope.factor, original_max_position_embeddings=original)
        config.max_position_embeddings = int(original * rope.factor)
    config.rope_parameters = params
    rebuild_rotary(model)
    return params


def rebuild_rotary(model) -> None:
    """Re-create every rotary-embedding module from the (changed) model config."""
    for name, module in list(model.named_modules()):
        if type(module).__name__.endswith("RotaryEmbedding"):
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            fresh = type(module)(module.config).to(module.inv_freq.device)
            setattr(parent, name.rsplit(".", 1)[-1], fresh)


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
    if lora.plus:  # norms and embeddings train in full precision next to the adapter
        for name, p in peft_model.named_parameters():
            if "modules_to_save" in name:
                p.requires_grad_(True)
    return peft_model


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


def hidden_and_head(model, input_ids: torch.Tensor, position_ids: torch.Tensor):
    """Final hidden states of the decoder and the output projection weight (no logits computed)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder()
    out = decoder(input_ids=input_ids, position_ids=position_ids, attention_mask=None, use_cache=False)
    return out.last_hidden_state, base.get_output_embeddings().weight


def save_adapter(model, path: Path, rope_params: dict | None, state_dict: dict | None = None) -> None:
    """Save the adapter (safetensors) and the RoPE parameters it was trained with.

    ``state_dict``: the gathered trainable weights when the model's own are FSDP2 shards.
    """
    model.save_pretrained(str(path), safe_serialization=True, state_dict=state_dict)
    if rope_params is not None:
        (path / ROPE_FILE).write_text(json.dumps(rope_params, indent=2))


def load_adapter(base_path: str, adapter_dir: str | Path, device: str = "cpu", dtype=torch.float32):
    """Base model + saved adapter, with the adapter's RoPE settings applied first."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from pipeline.assets import MODEL_LOAD_LOCK

    with MODEL_LOAD_LOCK:
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype, use_safetensors=True).to(device)
    rope_file = Path(adapter_dir) / ROPE_FILE
    if rope_file.exists():
        params = json.loads(rope_file.read_text())
        base.config.rope_parameters = params
        if params.get("rope_type") not in (None, "default"):
            base.config.max_position_embeddings = int(
                params["original_max_position_embeddings"] * params.get("factor", 1.0)
            )
        rebuild_rotary(base)
    return PeftModel.from_pretrained(base, str(adapter_dir)).eval()
