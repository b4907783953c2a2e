"""GPU trainer benchmark: a Llama-3-8B-shaped model (random bf16 weights, built from config: no
download) + LoRA r=16 on q/k/v/o, one optimizer step on a pack of 4 samples at 8K-128K tokens.

Per attention path (FlashAttention-2 varlen when ``flash_attn`` is installed, flex attention with a
document BlockMask, per-document SDPA) and with activation offload off/on: peak memory
(``max_memory_allocated``), tokens/s, OOMs recorded as such. Each path first runs the isolation proof
(two-sample pack, fp32 compute except FA2's bf16) on the 8B model. Everything the trainer uses:
lengthwise attention, chunked CE, non-reentrant activation checkpointing.

One command on a CUDA machine with 80-141 GB (finishes in under 8 minutes; rows that would pass the
time budget are recorded as skipped): ``python benchmarks/trainer_gpu.py``.
Results: ``benchmarks/results/trainer_gpu.json``.
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
LENGTHS = (8192, 16384, 32768, 65536, 131072)
BUDGET_S = 420  # leave a minute for model build and writing


def build():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from trainer.attention import register

    register()
    cfg = LlamaConfig(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=131072,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        tie_word_embeddings=False,
        use_cache=False,
    )
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    model = get_peft_model(
        model, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    )
    return model


def set_backend(model, backend: str) -> None:
    from trainer.attention import attn_name

    model.get_base_model().config._attn_implementation = attn_name(backend)


def step(model, total: int, offload: bool) -> dict:
    from trainer.batch import collate
    from trainer.loss import weighted_loss
    from trainer.model import batch_hidden_and_head, enable_checkpointing

    enable_checkpointing(model, offload=offload)
    rng = np.random.default_rng(0)
    sizes = [total // 4] * 4
    samples = [
        (rng.integers(3, 128000, n), np.r_[np.zeros(n - n // 4), np.ones(n // 4)].astype(np.float32))
        for n in sizes
    ]
    batch = collate(samples, "sequence", 4, 1.0).to("cuda")
    row = {"tokens": total, "offload": offload}
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    t = time.perf_counter()
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            hidden, head = batch_hidden_and_head(model, batch)
        weighted_loss(hidden, head, batch.targets, batch.target_weights, 4096).backward()
        torch.cuda.synchronize()
    except torch.OutOfMemoryError:
        row["error"] = "OOM"
    finally:
        model.zero_grad(set_to_none=True)
    wall = time.perf_counter() - t
    row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if "error" not in row:
        row.update(wall_s=round(wall, 2), tokens_per_s=round(total / wall, 1))
    return row


def isolation(model, backend: str) -> dict:
    from trainer.isolation import prove_isolation, two_samples

    samples = two_samples([], 1024, 128000, seed=0)
    try:
        report = prove_isolation(model, samples, torch.device("cuda"))
    except Exception as exc:  # recorded, not hidden: the benchmark still measures the path
        return {"backend": backend, "passed": False, "error": str(exc)[:500]}
    return {"backend": backend, "passed": True, **{k: report[k] for k in ("compute_dtype", "max_rel_diff", "tolerance")}}


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU")
    from trainer.attention import flash_available

    start = time.perf_counter()
    model = build()
    model.train()
    backends = (["flash"] if flash_available() else []) + ["flex", "sdpa"]
    plan = [(backends[0], off) for off in (False, True)] + [(b, True) for b in backends[1:]]
    result = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "model": "Llama-3-8B shape (32 layers, 4096 hidden, GQA 32/8, vocab 128256), random bf16 weights, LoRA r=16 q/k/v/o",
        "pack": "4 samples of tokens/4 each, answer-only loss on the last quarter, chunked CE, checkpointing",
        "flash_attn_installed": flash_available(),
        "isolation": [],
        "runs": [],
    }
    for backend in backends:
        set_backend(model, backend)
        result["isolation"].append(isolation(model, backend))
        print(json.dumps(result["isolation"][-1]), flush=True)
    for backend, offload in plan:
        set_backend(model, backend)
        step(model, 4096, offload)  # warm-up (kernels, compile of flex for a small shape)
        for total in LENGTHS:
            if time.perf_counter() - start > BUDGET_S:
                row = {"tokens": total, "offload": offload, "skipped": "time budget"}
            else:
                row = step(model, total, offload)
            row["attention"] = backend
            result["runs"].append(row)
            print(json.dumps(row), flush=True)
            if row.get("error") == "OOM":
                break
    result["wall_s"] = round(time.perf_counter() - start, 1)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
