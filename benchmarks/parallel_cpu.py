"""Data and sequence parallelism on CPU: one process vs DDP vs FSDP2 vs Ulysses SP2 (2 processes, gloo).

Same work in every mode: optimizer steps of 2 packs of ``PACK`` tokens (4 documents each) through a
random Llama (hidden 256, 4 layers, 8 heads, vocab 8192) with LoRA r=16 on q/k/v/o, activation
checkpointing, the trainer's chunked loss, AdamW. One process gets both cores (2 threads, what a
user would run); each of the 2 processes gets 1 thread. DDP and FSDP2 give each rank one pack;
SP2 splits both packs over the two ranks. Reported: global tokens/s (after 1 warm-up step) and,
per rank, the peak RSS and its growth over the RSS after the model was built.
Run: ``python benchmarks/parallel_cpu.py`` (about 5 minutes on 2 cores).

GPU section (``--gpu``, for a machine with 2+ CUDA GPUs; not run yet, none was lent to this task):
the same four modes with NCCL and bf16 on a Llama-3-8B-shaped model cut to 8 layers (hidden 4096,
32 heads, 8 KV heads, vocab 128256) at 16K-token packs; writes ``results/parallel_gpu.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "benchmarks" / "results" / "parallel_cpu.json"
PACK, STEPS = 2048, 2
GPU = "--gpu" in sys.argv
if GPU:
    PACK, OUT = 16384, OUT.with_name("parallel_gpu.json")
SHAPE = (
    {"hidden": 4096, "layers": 8, "heads": 32, "kv_heads": 8, "vocab": 128256}
    if GPU
    else {"hidden": 256, "layers": 4, "heads": 8, "kv_heads": 4, "vocab": 8192}
)


def build_model(folder: Path, hidden, layers, heads, kv_heads, vocab, max_pos=131072) -> None:
    """A random Llama-shaped model saved as safetensors (no tokenizer needed)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=3 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_pos,
        tie_word_embeddings=not GPU,
    )
    LlamaForCausalLM(cfg).to(torch.bfloat16 if GPU else torch.float32).save_pretrained(
        folder, safe_serialization=True
    )


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(model_dir: str, data: str, seq: int, pack: int, steps: int, out: str) -> None:
    """One rank (or the single process): train ``steps`` + 1 steps and write its measurements."""
    import numpy as np
    import torch
    import torch.distributed as dist

    from trainer import parallel
    from trainer.batch import collate, step_totals
    from trainer.config import TrainConfig
    from trainer.distributed import init
    from trainer.model import add_lora, enable_checkpointing, load_base

    world = init()
    if not GPU:
        torch.set_num_threads(2 if world.size == 1 else 1)
    cfg = TrainConfig(
        model=model_dir,
        data="unused",
        precision="bf16" if GPU else "fp32",
        stages=[{"max_length": pack, "steps": 1}],
        tokens_per_step=2 * pack,
        lora={"r": 16, "alpha": 32},
        parallel={"data": data, "sequence": seq},
    )
    torch.manual_seed(0)
    model, _ = load_base(cfg, world.device)
    model = add_lora(model, cfg.lora, 10)
    enable_checkpointing(model)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if GPU else contextlib.nullcontext
    par = parallel.wrap(model, cfg, world, autocast)
    opt = torch.optim.AdamW(parallel.trainable(par), lr=1e-4)
    rng = np.random.default_rng(0)
    packs = []
    for _ in range(2):
        docs = []
        for n in (pack // 4,) * 4:
            w = np.zeros(n, np.float32)
            w[n // 2 :] = 1
            docs.append((rng.integers(3, SHAPE["vocab"] - 1, n), w))
        packs.append(docs)
    n, wsum = step_totals([w for p in packs for _, w in p])
    mine = packs[par.dp_rank :: par.dp_size]
    base_rss = _rss_mib()
    times = []
    for _ in range(steps + 1):
        if world.size > 1:
            dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        for k, p in enumerate(mine):
            parallel.forward_backward(par, collate(p, "sequence", n, wsum), last=k == len(mine) - 1)
        opt.step()
        if world.size > 1:
            dist.barrier()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if GPU:  # device memory is what limits a GPU run
        peak, base_rss = torch.cuda.max_memory_allocated() / 2**20, 0.0
    step_s = sum(times[1:]) / steps
    Path(f"{out}.rank{world.rank}").write_text(
        json.dumps(
            {
                "rank": world.rank,
                "step_s": step_s,
                "tokens_per_s": 2 * pack / step_s,
                "peak_rss_mib": round(peak, 1),
                "step_rss_growth_mib": round(peak - base_rss, 1),
            }
        )
    )
    if world.size > 1:
        dist.destroy_process_group()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_mode(name: str, procs: int, data: str, seq: int, model_dir: Path, tmp: Path) -> dict:
    """Start one mode in fresh processes and collect every rank's numbers."""
    out = tmp / name
    args = [str(model_dir), data, str(seq), str(PACK), str(STEPS), str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1" if procs > 1 else "2"}
    env["HF_HUB_OFFLINE"] = "1"
    script = [str(Path(__file__).resolve()), "--worker", *args, *(["--gpu"] if GPU else [])]
    if procs == 1:
        cmd = [sys.executable, *script]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(procs)]
        cmd += ["--master-port", str(_port()), *script]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    ranks = [json.loads(Path(f"{out}.rank{r}").read_text()) for r in range(procs)]
    return {
        "mode": name,
        "processes": procs,
        "tokens_per_s": round(min(r["tokens_per_s"] for r in ranks), 1),
        "step_s": round(max(r["step_s"] for r in ranks), 3),
        "peak_rss_mib_per_rank": [r["peak_rss_mib"] for r in ranks],
        "step_rss_growth_mib_per_rank": [r["step_rss_growth_mib"] for r in ranks],
    }


def _machine() -> str:
    import torch

    if GPU:
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"{platform.machine()}, {os.cpu_count()} cores, no GPU (shared with other jobs while measured)"


def main() -> None:
    """Run every mode and write the JSON."""
    modes = [("one process", 1, "ddp", 1), ("DDP x2", 2, "ddp", 1), ("FSDP2 x2", 2, "fsdp", 1)]
    modes.append(("Ulysses SP2", 2, "ddp", 2))
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        build_model(tmp / "model", **SHAPE)
        rows = [run_mode(*m, model_dir=tmp / "model", tmp=tmp) for m in modes]
    result = {
        "machine": _machine(),
        "load_average_1_5_15_min_at_end": [round(x, 1) for x in os.getloadavg()],
        "torch": __import__("torch").__version__,
        "pack_tokens": PACK,
        "packs_per_step": 2,
        "timed_steps": STEPS,
        "model": f"random Llama {SHAPE}; LoRA r=16 q/k/v/o",
        "rows": rows,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        a = sys.argv[2:]
        worker(a[0], a[1], int(a[2]), int(a[3]), int(a[4]), a[5])
    else:
        main()
