"""Data and sequence parallelism on torch's own engine (DDP or FSDP2, plus Ulysses).

Ranks form a grid ``world = data x sequence``: ranks ``[d*S, (d+1)*S)`` share one data-parallel
slot and split the tokens of the same packs (Ulysses, trainer/sequence.py). Each rank's loss is
already normalised over the whole optimizer step (sum/sum), so gradients are *summed* over every
rank, never averaged: DDP gets a summing communication hook, FSDP2 a divide factor of 1. That
makes any layout give the gradients of one process that ran the whole step.

DDP synchronises only on the last micro-batch of a step (``no_sync``); FSDP2 reduce-scatters every
micro-batch so gradients stay sharded. FSDP2 shards each decoder layer and the root, computes in
bf16 on CUDA and keeps the sharded originals (the trainable LoRA weights, and their AdamW state) in
fp32. Checkpoints are written with ``torch.distributed.checkpoint``: every rank saves its own shards
and its own RNG state (ranks draw different dropout masks from per-rank seeds).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from trainer import attention, sequence
from trainer.config import TrainConfig
from trainer.distributed import World
from trainer.loss import weighted_loss
from trainer.model import hidden_and_head

RANK_SEED_STRIDE = 1_000_003  # keeps per-rank dropout streams apart for any user seed


@dataclass
class Parallel:
    """The wrapped model and where this rank sits in the data x sequence grid."""

    world: World
    module: nn.Module  # LossModel, wrapped by DDP or sharded by FSDP2 when there are several ranks
    model: nn.Module  # the peft model inside (optimizer, saving, evaluation)
    data: str
    seq: int
    seq_group: dist.ProcessGroup | None
    seq_backend: str = "sdpa"  # the varlen attention backend Ulysses runs on its gathered heads

    @property
    def dp_size(self) -> int:
        """Data-parallel slots: each handles its own packs."""
        return self.world.size // self.seq

    @property
    def dp_rank(self) -> int:
        """The data-parallel slot of this rank."""
        return self.world.rank // self.seq

    @property
    def seq_rank(self) -> int:
        """Position of this rank in its sequence-parallel group."""
        return self.world.rank % self.seq


class LossModel(nn.Module):
    """The peft model and the chunked weighted loss as one forward, so DDP/FSDP hooks see all of it."""

    def __init__(self, model: nn.Module, chunk_tokens: int, autocast) -> None:
        super().__init__()
        self.model, self.chunk_tokens, self.autocast = model, chunk_tokens, autocast

    def forward(
        self, input_ids, position_ids=None, targets=None, weights=None, cu_seqlens=None, max_seqlen=None
    ):
        """Weighted loss of one packed row (its share of the optimizer step).

        Given a function instead of token ids, returns ``fn(model)`` (see :func:`on_whole_model`).
        """
        if callable(input_ids):
            return input_ids(self.model)
        with self.autocast():
            hidden, head = hidden_and_head(self.model, input_ids, position_ids, cu_seqlens, max_seqlen)
        return weighted_loss(hidden, head, targets, weights, self.chunk_tokens)


def check(cfg: TrainConfig, world: World) -> None:
    """Refuse layouts that cannot work, naming the fix."""
    n = cfg.parallel.sequence
    if world.size % n:
        raise ValueError(
            f"parallel.sequence={n} must divide the number of processes ({world.size}); "
            f"launch a multiple of {n} processes or change parallel.sequence"
        )


def seed_rank(seed: int, world: World) -> None:
    """Per-rank random streams (dropout) after the model is built identically on every rank."""
    torch.manual_seed(seed + RANK_SEED_STRIDE * world.rank)


def _sequence_groups(world: World, n: int) -> dist.ProcessGroup | None:
    if n == 1:
        return None
    mine = None
    for start in range(0, world.size, n):  # every rank must create every group, in the same order
        group = dist.new_group(list(range(start, start + n)))
        if start <= world.rank < start + n:
            mine = group
    return mine


def _sum_hook(_state, bucket):
    """DDP communication hook: all-reduce SUM (the default divides by the world size)."""
    fut = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
    return fut.then(lambda f: f.value()[0])


def _fsdp(module: LossModel, cfg: TrainConfig, world: World) -> nn.Module:
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    mp = cfg.parallel.mixed_precision
    if mp == "auto":
        mp = "bf16" if world.device.type == "cuda" else "fp32"
    policy = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if mp == "bf16"
        else MixedPrecisionPolicy()
    )
    base = module.model.get_base_model() if hasattr(module.model, "get_base_model") else module.model
    for layer in base.get_decoder().layers:
        fully_shard(layer, mp_policy=policy)
    fully_shard(module, mp_policy=policy)
    for m in module.modules():
        if isinstance(m, FSDPModule):
            m.set_gradient_divide_factor(1.0)  # sum, not average (see the module docstring)
            m.set_force_sum_reduction_for_comms(True)  # plain SUM: gloo has no PREMUL_SUM
    return module


def wrap(model: nn.Module, cfg: TrainConfig, world: World, autocast) -> Parallel:
    """Wrap the peft model for this launch: as is (one process), DDP or FSDP2; set up Ulysses groups."""
    check(cfg, world)
    n = cfg.parallel.sequence
    backend = attention.backend_of(model.config._attn_implementation) or "sdpa"
    if n > 1:
        model.config._attn_implementation = sequence.register(backend)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        base.config._attn_implementation = sequence.NAME
    module: nn.Module = LossModel(model, cfg.ce_chunk_tokens, autocast)
    if world.size > 1:
        if cfg.parallel.data == "fsdp":
            module = _fsdp(module, cfg, world)
        else:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [world.device.index] if world.device.type == "cuda" else None
            module = DDP(module, device_ids=ids)
            module.register_comm_hook(None, _sum_hook)
    return Parallel(world, module, model, cfg.parallel.data, n, _sequence_groups(world, n), backend)


def on_whole_model(par: Parallel, fn):
    """``fn(model)`` with the whole model usable on its own (isolation check, gate probes); all ranks call.

    Under FSDP2 it runs inside the root's forward, whose hooks gather the root's parameters
    (embeddings, final norm, head); the decoder layers gather their own shards in their hooks.
    """
    if par.data == "fsdp" and par.world.size > 1:
        return par.module(fn)
    return fn(par.model)


def forward_backward(par: Parallel, batch, last: bool) -> tuple[float, int]:
    """Loss and backward of one pack (this rank's slice of it under sequence parallelism).

    Returns this rank's share of the step loss and of the real tokens; summed over ranks they are
    the step's loss and tokens.
    """
    batch = batch.to(par.world.device)
    tokens = batch.tokens
    ctx = contextlib.nullcontext()
    if par.seq > 1:
        batch, cu = sequence.split(batch, par.seq_rank, par.seq)
        ctx = sequence.sharded(par.seq_group, par.seq, cu, par.seq_backend)
        tokens = tokens if par.seq_rank == 0 else 0
    sync = contextlib.nullcontext()
    if not last and hasattr(par.module, "no_sync"):
        sync = par.module.no_sync()  # DDP: one all-reduce per optimizer step
    with ctx, sync:
        bounds = (batch.cu_seqlens, batch.max_seqlen) if par.seq == 1 else (None, None)  # SP: sequence.py's
        loss = par.module(batch.input_ids, batch.position_ids, batch.targets, batch.target_weights, *bounds)
        loss.backward()  # summed over micro-batches: no division by the number of packs
    return float(loss.detach()), tokens


def trainable(par: Parallel) -> list[nn.Parameter]:
    """Parameters the optimizer updates (DTensor shards under FSDP2)."""
    return [p for p in par.model.parameters() if p.requires_grad]


# ---- checkpoints -------------------------------------------------------------------------------


def _options(full: bool = False, strict: bool = True):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # Only trainable weights are saved: the frozen base comes from the model folder (strict=False on load).
    return StateDictOptions(ignore_frozen_params=True, full_state_dict=full, cpu_offload=full, strict=strict)


def save_sharded(folder: Path, par: Parallel, optimizer) -> None:
    """Every rank writes its shards of the adapter and optimizer state, and its RNG state."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_sd, optim_sd = get_state_dict(par.model, optimizer, options=_options())
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(folder / "dcp"))
    torch.save(_rng_state(), folder / f"rng-rank{par.world.rank}.pt")


def load_sharded(folder: Path, par: Parallel, optimizer) -> None:
    """Restore what :func:`save_sharded` wrote (resharded if the layout changed) and this rank's RNG."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_sd, optim_sd = get_state_dict(par.model, optimizer, options=_options())
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=str(folder / "dcp"))
    set_state_dict(
        par.model,
        optimizer,
        model_state_dict=state["model"],
        optim_state_dict=state["optim"],
        options=_options(strict=False),
    )
    rng = folder / f"rng-rank{par.world.rank}.pt"
    if not rng.exists():
        raise RuntimeError(
            f"{folder} has no RNG state for rank {par.world.rank}: it was written by fewer processes; "
            "resume with the same number of processes (or start a new output_dir)"
        )
    _set_rng_state(torch.load(rng, weights_only=True))


def _rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state()
        if torch.cuda.is_available()
        else torch.empty(0, dtype=torch.uint8),
    }


def _set_rng_state(blob: dict) -> None:
    torch.set_rng_state(blob["torch"])
    if blob["cuda"].numel() and torch.cuda.is_available():
        torch.cuda.set_rng_state(blob["cuda"])


def full_adapter_state(par: Parallel) -> dict[str, torch.Tensor] | None:
    """The complete trainable state on rank 0 (a collective under FSDP2; every rank must call it)."""
    if par.world.size == 1 or par.data != "fsdp":
        return None  # the model's own parameters are complete
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    sd = get_model_state_dict(par.model, options=_options(full=True))
    return sd if par.world.main else None


def save_adapter(par: Parallel, path: Path, rope_state=None, base_rope=None) -> None:
    """Write the adapter (and its RoPE side file) from rank 0; gathers FSDP2 shards first (all ranks call)."""
    from trainer.model import save_adapter as write

    full = full_adapter_state(par)
    if par.world.main:
        write(par.model, path, rope_state, base_rope, state_dict=full)
    if par.world.size > 1:
        dist.barrier()


def is_torchrun() -> bool:
    """Whether this process was started by torchrun / accelerate launch (they set the same variables)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ
