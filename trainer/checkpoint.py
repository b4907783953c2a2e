"""Checkpoints for exact resume: adapter, optimizer, scheduler, RNG and the plan cursor.

Tensors are saved with safetensors (adapter) or ``torch.save`` of plain state dicts, and always
loaded with ``weights_only=True``. A checkpoint folder appears by atomic rename, so a run killed
while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch


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


def save(output_dir: Path, state: TrainState, model, optimizer, scheduler, keep: int) -> Path:
    """Write ``checkpoints/step-XXXXXXX`` atomically and prune old ones."""
    root = checkpoint_dir(output_dir)
    final = root / f"step-{state.global_step:07d}"
    tmp = root / f".tmp-{final.name}"
    for stale in root.glob(".tmp-step-*"):  # half-written checkpoints of a killed run
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp / "adapter"), safe_serialization=True)
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        tmp / "trainer_state.pt",
    )
    (tmp / "state.json").write_text(json.dumps(asdict(state)))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(output_dir: Path) -> Path | None:
    """The newest complete checkpoint, if any."""
    done = sorted(p for p in checkpoint_dir(output_dir).glob("step-*") if (p / "state.json").exists())
    return done[-1] if done else None


def restore(path: Path, model, optimizer, scheduler) -> TrainState:
    """Load adapter weights, optimizer, scheduler and RNG from ``path``; return the saved state."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    adapter = load_file(str(path / "adapter" / "adapter_model.safetensors"))
    set_peft_model_state_dict(model, adapter)
    blob = torch.load(path / "trainer_state.pt", weights_only=True)
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    torch.set_rng_state(blob["torch_rng"])
    if blob["cuda_rng"]:
        torch.cuda.set_rng_state_all(blob["cuda_rng"])
    return TrainState(**json.loads((path / "state.json").read_text()))
