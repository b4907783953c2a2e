"""QLoRA: the frozen base in bitsandbytes NF4 (4-bit), adapters and their optimizer state in full precision."""

from __future__ import annotations

import torch

from trainer.config import TrainConfig


def load_kwargs(cfg: TrainConfig, device: torch.device) -> dict:
    """Extra ``from_pretrained`` arguments for ``cfg.quantize``; a clear error where it cannot run."""
    if cfg.quantize is None:
        return {}
    if device.type != "cuda":
        raise RuntimeError(
            "quantize: 4bit needs a CUDA GPU (bitsandbytes NF4 kernels); this process has none. "
            "On CPU remove `quantize` from the train config (LoRA on the full-precision base)"
        )
    if cfg.parallel.data == "fsdp":
        raise RuntimeError("quantize: 4bit works with parallel.data: ddp (or one process), not fsdp")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("quantize: 4bit needs bitsandbytes: pip install 'lengthwise[qlora]'") from exc
    from transformers import BitsAndBytesConfig

    return {
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        ),
        "device_map": {"": device.index or 0},
    }


def prepare(model, cfg: TrainConfig):
    """Make a 4-bit base trainable with adapters (norms in fp32, inputs that require grad)."""
    if cfg.quantize is None:
        return model
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
