"""``lengthwise train CONFIG.yaml``: the progressive-length LoRA trainer."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pipeline.cli.common import SET_HELP


def train_cmd(
    config: Path = typer.Argument(
        None, help="Training YAML, or a run YAML (its train section; data defaults to the build's shards)."
    ),
    config_opt: Path = typer.Option(None, "--config", help="Same as the CONFIG argument."),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Train a LoRA adapter over a length curriculum (multi-GPU: torchrun -m trainer CONFIG.yaml)."""
    from pipeline.cli.flow_cmd import _config

    path = _config(config, config_opt)
    from flows.config import load_train_config
    from trainer.recipe import train

    summary = train(load_train_config(path, overrides))
    typer.echo(json.dumps(summary, indent=2))


def register(app: typer.Typer) -> None:
    """Add ``train`` to ``app``."""
    app.command("train")(train_cmd)
