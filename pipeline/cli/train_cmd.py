"""``lengthwise train CONFIG.yaml``: the progressive-length LoRA trainer."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def train_cmd(config: Path = typer.Argument(..., help="Training YAML (see configs/ for examples).")) -> None:
    """Train a LoRA adapter over a length curriculum (multi-GPU: torchrun -m trainer CONFIG.yaml)."""
    from trainer.config import load_config
    from trainer.recipe import train

    summary = train(load_config(config))
    typer.echo(json.dumps(summary, indent=2))


def register(app: typer.Typer) -> None:
    """Add ``train`` to ``app``."""
    app.command("train")(train_cmd)
