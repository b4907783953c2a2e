"""GPU trainer benchmark: a Llama-3-8B-shaped model (random bf16 weights) + LoRA.

One optimizer step at 8K/16K/32K/64K tokens (one packed row of 4 samples, isolation by position
resets, chunked CE, activation checkpointing, offloaded at 32K+): peak memory and tokens/s; and
packed vs padded-to-longest throughput at 8K. Run on a CUDA machine: ``python benchmarks/trainer_gpu.py``.
Results go to ``benchmarks/results/trainer_gpu.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "benchmarks" / "results" / "trainer_gpu.json"


def build(attn: str):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=131072,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        attn_implementation=attn,
    )
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    model = get_peft_model(
        model, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    )
    model.train()
    return model


def step(model, total: int, offload: bool) -> dict:
    from trainer.batch import collate
    from trainer.loss import weighted_loss
    from trainer.model import enable_checkpointing, hidden_and_head

    enable_checkpointing(model, offload=offload)
    rng = np.random.default_rng(0)
    sizes = [total // 4] * 4
    samples = [
        (rng.integers(3, 128000, n), np.r_[np.zeros(n - 256), np.ones(256)].astype(np.float32)) for n in sizes
    ]
    batch = collate(samples, "sequence", 4, 1024.0).to("cuda")
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    t = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        hidden, head = hidden_and_head(model, batch.input_ids, batch.position_ids)
    weighted_loss(hidden, head, batch.targets, batch.target_weights, 4096).backward()
    torch.cuda.synchronize()
    wall = time.perf_counter() - t
    model.zero_grad(set_to_none=True)
    return {
        "tokens": total,
        "offload": offload,
        "wall_s": round(wall, 2),
        "tokens_per_s": round(total / wall, 1),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }


def padded_vs_packed(model, total: int = 8192) -> dict:
    rng = np.random.default_rng(1)
    lengths = [int(x) for x in rng.integers(512, 4096, 16)]
    from trainer.batch import collate
    from trainer.loss import weighted_loss
    from trainer.model import hidden_and_head
    from trainer.packing import pack_bfd

    samples = [(rng.integers(3, 128000, n), np.ones(n, np.float32)) for n in lengths]
    torch.cuda.synchronize()
    t = time.perf_counter()
    for pack in pack_bfd(lengths, total):
        b = collate([samples[i] for i in pack], "token", 1, float(sum(lengths))).to("cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            h, w = hidden_and_head(model, b.input_ids, b.position_ids)
        weighted_loss(h, w, b.targets, b.target_weights, 4096).backward()
    torch.cuda.synchronize()
    packed = time.perf_counter() - t
    t = time.perf_counter()
    for s in range(0, len(lengths), 2):  # two samples per batch, padded to the longer
        idx = [s, s + 1]
        longest = max(lengths[i] for i in idx)
        ids = torch.zeros(2, longest, dtype=torch.long, device="cuda")
        mask = torch.zeros_like(ids)
        for r, i in enumerate(idx):
            ids[r, : lengths[i]] = torch.as_tensor(samples[i][0], device="cuda")
            mask[r, : lengths[i]] = 1
        with torch.autocast("cuda", dtype=torch.bfloat16):
            model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss.backward()
    torch.cuda.synchronize()
    padded = time.perf_counter() - t
    model.zero_grad(set_to_none=True)
    return {"packed_s": round(packed, 2), "padded_s": round(padded, 2), "speedup": round(padded / packed, 2)}


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU")
    from trainer.model import pick_attention

    attn = pick_attention("auto", torch.device("cuda"))
    model = build(attn)
    rows = [step(model, n, offload=n >= 32768) for n in (8192, 16384, 32768, 65536)]
    result = {
        "gpu": torch.cuda.get_device_name(),
        "attn": attn,
        "date": time.strftime("%Y-%m-%d"),
        "steps": rows,
        "packed_vs_padded_8k": padded_vs_packed(model),
    }
    print(json.dumps(result, indent=1))
    OUT.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
