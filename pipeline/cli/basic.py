"""``lengthwise assets`` and ``lengthwise validate``."""

from __future__ import annotations

from pathlib import Path

import typer


def assets_cmd() -> None:
    """Prepare the embedded default models (MiniLM embeddings, SmolLM2); safe to rerun."""
    from pipeline.assets import prepare_assets

    paths = prepare_assets(progress=typer.echo)
    typer.echo("assets ready:")
    for name, path in paths.items():
        typer.echo(f"  {name}: {path}")


def validate_cmd(
    paths: list[Path] = typer.Argument(..., help="Shard files, manifest.json files or dataset folders."),
) -> None:
    """Check shards and manifests against their contracts and print a summary."""
    from pipeline.validate import validate_path

    for path in paths:
        for line in validate_path(path).lines():
            typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add the commands of this module to ``app``."""
    app.command("assets")(assets_cmd)
    app.command("validate")(validate_cmd)
