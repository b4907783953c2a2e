"""Run under torchrun (2 processes, gloo): Ulysses sequence parallel vs one process on one packed batch.

Every rank computes the single-process reference itself (the whole pack, no collectives), then the
sequence-parallel version (its token slice, attention across ranks). Then, under a real per-process
memory cap (RLIMIT_DATA, BUDGET_MIB above what the process already holds), one step on a long pack:
sequence parallel must fit, the same pack in one process must not. Rank 0 writes the comparison
as JSON to argv[2]. Usage: torchrun --nproc-per-node 2 sp_check.py MODEL_DIR OUT.json
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys

import numpy as np
import torch
import torch.distributed as dist


def _whole(b) -> tuple:
    """A pack as one rank runs it: explicit sample boundaries for the single-rank attention path."""
    return b.input_ids, b.position_ids, b.targets, b.target_weights, b.cu_seqlens, b.max_seqlen


# Measured on a 24K-token pack (3 x 8000, no activation checkpointing, so activations dominate):
# a sequence-parallel rank needs 110-125 MiB, one process 200-230 MiB. 160 sits between with room.
BUDGET_MIB = int(os.environ.get("SP_CHECK_BUDGET_MIB", "160"))
SAMPLES = [int(x) for x in os.environ.get("SP_CHECK_SAMPLES", "8000,8000,8000").split(",")]
PRECISION = os.environ.get("SP_CHECK_PRECISION", "fp32")  # the trainer's precision setting
MEMORY = os.environ.get("SP_CHECK_MEMORY", "1") == "1"  # run the memory-capped comparison too


def _vm_data() -> int:
    """Bytes of private writable memory this process has mapped (what RLIMIT_DATA caps)."""
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmData:"))
    return kib * 1024


def _capped(fn) -> str:
    """Run ``fn`` with at most BUDGET_MIB of new memory (a real RLIMIT_DATA cap); "ok" or "out of memory"."""
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    resource.setrlimit(resource.RLIMIT_DATA, (_vm_data() + BUDGET_MIB * 2**20, hard))
    try:
        fn()
        return "ok"
    except (RuntimeError, MemoryError) as e:  # torch: "DefaultCPUAllocator: can't allocate memory"
        if "alloc" not in str(e).lower() and not isinstance(e, MemoryError):
            raise
        return "out of memory"
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def _memory_capped(par, inner, rng) -> dict:
    """One training step of a 24K-token pack of 3 samples with a per-process memory budget.

    Sequence parallel runs first, so if anything the single-process attempt after it profits from
    memory the allocator kept.
    """
    from trainer import parallel
    from trainer.batch import collate

    long = [(rng.integers(3, 900, n), np.ones(n, np.float32)) for n in SAMPLES]
    batch = collate(long, "sequence", 3, float(sum(len(i) - 1 for i, _ in long)))
    par.model.zero_grad()
    sp = _capped(lambda: parallel.forward_backward(par, batch, last=True))
    sp_grads = all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in parallel.trainable(par))
    par.model.zero_grad()
    single = _capped(lambda: inner(*_whole(batch)).backward())
    return {
        "budget_mib": BUDGET_MIB,
        "pack_tokens": batch.tokens,
        "capped_sp": sp,
        "capped_sp_grads": sp_grads,
        "capped_single": single,
    }


def main(model_dir: str, out: str) -> None:
    from trainer import parallel, sequence
    from trainer.batch import collate
    from trainer.config import TrainConfig
    from trainer.distributed import init
    from trainer.model import add_lora, load_base

    world = init()
    torch.manual_seed(0)
    cfg = TrainConfig(
        model=model_dir,
        data="unused",
        precision=PRECISION,
        lora={"r": 4, "alpha": 8, "dropout": 0.0},
        parallel={"sequence": 2},
        stages=[{"max_length": 512, "steps": 1}],
        tokens_per_step=512,
    )
    model, _ = load_base(cfg, world.device)
    model = add_lora(model, cfg.lora, 10)
    for p in model.parameters():  # non-zero LoRA B so every LoRA weight gets a gradient
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.02)
    par = parallel.wrap(model, cfg, world, contextlib.nullcontext)
    rng = np.random.default_rng(1)
    samples = []
    vocab = min(900, model.config.vocab_size - 1)
    for n in (70, 133, 41):  # 244 tokens: the split falls inside the second sample
        w = np.zeros(n, np.float32)
        w[n // 2 :] = 1.0
        samples.append((rng.integers(3, vocab, n), w))

    def masked(k):
        return [(i, w if j == k else np.zeros_like(w)) for j, (i, w) in enumerate(samples)]

    inner = par.module.module if hasattr(par.module, "module") else par.module
    result = {"losses_single": [], "losses_sp": []}
    with torch.no_grad():
        for k in range(len(samples)):
            b = collate(masked(k), "token", 1, float(samples[k][1][1:].sum()))
            result["losses_single"].append(float(inner(*_whole(b))))
            part, cu = sequence.split(b, par.seq_rank, par.seq)
            with sequence.sharded(par.seq_group, par.seq, cu):
                mine = inner(part.input_ids, part.position_ids, part.targets, part.target_weights)
            total = mine.detach().reshape(1).double()
            dist.all_reduce(total)
            result["losses_sp"].append(float(total))
    # Gradients of the whole pack: single process vs the sum of the two ranks' sequence-parallel grads.
    every = [w for _, w in samples]
    batch = collate(samples, "sequence", 3, float(sum(w[1:].sum() for w in every)))
    params = parallel.trainable(par)
    model.zero_grad()
    inner(*_whole(batch)).backward()
    single = torch.cat([p.grad.flatten() for p in params]).clone()
    model.zero_grad()
    parallel.forward_backward(par, batch, last=True)  # DDP sums the ranks' partial gradients
    sp = torch.cat([p.grad.flatten() for p in params])
    result["grad_max_abs_diff"] = float((single - sp).abs().max())
    result["grad_max_abs"] = float(single.abs().max())
    result["grad_params"] = len(params)
    result["base_dtype"] = str(next(p.dtype for p in model.parameters() if not p.requires_grad))
    result["model_type"] = model.config.model_type if hasattr(model, "config") else "?"
    if MEMORY:
        result.update(_memory_capped(par, inner, rng))
    if world.main:
        with open(out, "w") as f:
            json.dump(result, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
