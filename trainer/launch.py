"""Start training in this process or as a ``torchrun`` job on this machine (used by the Prefect run flow).

``launcher: torchrun`` writes the config next to the outputs and runs
``python -m torch.distributed.run --standalone --nproc-per-node N -m trainer CONFIG.yaml``, so the
flow's task waits for the whole multi-process job and gets the same summary as in-process training.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from trainer.config import TrainConfig


def torchrun_command(cfg_path: Path, nproc: int) -> list[str]:
    """The command line that starts ``nproc`` training processes on this machine."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
        "-m", "trainer", str(cfg_path),
    ]  # fmt: skip


def train(cfg: TrainConfig) -> dict:
    """Train with ``cfg.launcher``; returns the run summary (``{"stopped_at": ...}`` never happens here)."""
    if cfg.launcher == "python":
        from trainer.recipe import train as train_here

        return train_here(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "train-config.yaml"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    os.replace(tmp, path)
    log = out / "torchrun.log"
    with log.open("ab") as f:
        proc = subprocess.run(torchrun_command(path, cfg.nproc_per_node), stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"torchrun training failed (exit {proc.returncode}); full log: {log}\n{tail}")
    return json.loads((out / "summary.json").read_text())
