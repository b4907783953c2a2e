"""``lengthwise export`` (a trained model out, merged or as an adapter) and ``lengthwise export-shards``."""

from __future__ import annotations

from pathlib import Path

import typer


def export_cmd(
    source: Path = typer.Argument(
        ..., help="Training output folder (e.g. out/demo/train) or an adapter folder."
    ),
    out: Path = typer.Option(..., help="Folder to write (replaced only if it is an earlier export)."),
    merge: bool = typer.Option(
        False, help="Merge into the base: a standalone model with the RoPE in config.json."
    ),
    dtype: str = typer.Option("auto", help="--merge: auto (the base's) | bf16 | fp16 | fp32."),
    stage: int = typer.Option(
        None, help="Export the adapter saved after this stage (0-based) instead of the final one."
    ),
    base: str = typer.Option(
        None, help="Base model folder or hub ID (default: the one the run was given); also the name recorded."
    ),
    max_shard_size: str = typer.Option("5GB", help="--merge: largest safetensors file."),
) -> None:
    """Export a trained model: merged standalone folder, or the adapter with a model card."""
    from trainer.export import export

    path = export(
        source, out, merge=merge, dtype=dtype, stage=stage, base=base, max_shard_size=max_shard_size
    )
    typer.echo(f"wrote {path} ({'merged model' if merge else 'adapter'}; see {path / 'README.md'})")


def export_shards_cmd(
    shards: Path = typer.Argument(..., help="Folder written by `lengthwise shard`."),
    out: Path = typer.Option(..., help="Folder for Parquet files + README (load_dataset(out) works)."),
    min_length: int = typer.Option(0, help="Only buckets above this length."),
    max_length: int = typer.Option(None, help="Only buckets up to this length."),
) -> None:
    """Shards as input_ids / labels (-100 where unweighted) / attention_mask, ready for TRL's SFTTrainer."""
    from pipeline.stages.hf_export import export_shards

    result = export_shards(shards, out, min_length, max_length)
    for line in result.lines():
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add ``export`` and ``export-shards`` to ``app``."""
    app.command("export")(export_cmd)
    app.command("export-shards")(export_shards_cmd)
