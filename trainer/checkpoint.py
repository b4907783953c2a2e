"""Checkpoints for exact resume: adapter, optimizer, scheduler, every rank's RNG and the plan cursor.

Adapter and optimizer state go through ``torch.distributed.checkpoint`` (each rank writes its own
shards under FSDP2; one process writes everything otherwise) and are loaded back resharded for the
current layout; scheduler and RNG are plain tensors loaded with ``weights_only=True``. A checkpoint
folder appears by atomic rename once every rank has written, so a run killed while saving leaves
the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from trainer import distributed, parallel


@dataclass
class TrainState:
    """Where the run is: the next (stage, step) to run and what happened so far."""

    stage: int = 0
    step: int = 0  # next step within the stage
    global_step: int = 0
    tokens_seen: int = 0
    losses: list[float] = field(default_factory=list)
    config_hash: str = ""


def checkpoint_dir(output_dir: Path) -> Path:
    """Where checkpoints live."""
    return output_dir / "checkpoints"


def save(
    output_dir: Path, state: TrainState, par: parallel.Parallel, optimizer, scheduler, keep: int
) -> Path:
    """Write ``checkpoints/step-XXXXXXX`` atomically and prune old ones (every rank calls this)."""
    root = checkpoint_dir(output_dir)
    final = root / f"step-{state.global_step:07d}"
    tmp = root / f".tmp-{final.name}"
    world = par.world
    if world.main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    distributed.barrier(world)
    parallel.save_sharded(tmp, par, optimizer)
    distributed.barrier(world)  # every rank's shards and RNG are on disk
    if world.main:
        torch.save({"scheduler": scheduler.state_dict()}, tmp / "trainer_state.pt")
        (tmp / "state.json").write_text(json.dumps(asdict(state)))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    distributed.barrier(world)
    return final


def latest(output_dir: Path) -> Path | None:
    """The newest complete checkpoint, if any."""
    done = sorted(p for p in checkpoint_dir(output_dir).glob("step-*") if (p / "state.json").exists())
    return done[-1] if done else None


def restore(path: Path, par: parallel.Parallel, optimizer, scheduler) -> TrainState:
    """Load adapter, optimizer, scheduler and this rank's RNG from ``path``; return the saved state."""
    parallel.load_sharded(path, par, optimizer)
    blob = torch.load(path / "trainer_state.pt", weights_only=True)
    scheduler.load_state_dict(blob["scheduler"])
    return TrainState(**json.loads((path / "state.json").read_text()))
