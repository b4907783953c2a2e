"""``lengthwise shard`` and ``lengthwise inspect``."""

from __future__ import annotations

from pathlib import Path

import typer


def shard_cmd(
    qa: list[Path] = typer.Argument(..., help="QA folders written by `lengthwise synth`."),
    tokenizer: str = typer.Option(None, help="Student model folder or hub ID (chat template + tokenizer)."),
    buckets: str = typer.Option("512,1024,2048,4096,8192,16384,32768,65536", help="Bucket edges in tokens."),
    context_weight: float = typer.Option(0.0, help="Loss weight on document tokens (LIFT-style)."),
    answer_weight: float = typer.Option(1.0, help="Loss weight on answer tokens."),
    heldout: float = typer.Option(
        0.0, help="Share of documents written to OUT/heldout for evaluation and never trained on."
    ),
    out: Path = typer.Option(Path("out/shards"), help="Output folder."),
) -> None:
    """Tokenize QA records into length-sorted, bucketed Arrow shards with a manifest and dataset card."""
    from tqdm import tqdm

    from pipeline.config import ShardConfig, int_list, make
    from pipeline.stages.shard import build_shards, inspect_lines

    cfg = make(
        ShardConfig,
        "shard",
        tokenizer=tokenizer,
        bucket_edges=int_list(buckets, "--buckets"),
        context_weight=context_weight,
        answer_weight=answer_weight,
        heldout_fraction=heldout,
    )
    with tqdm(unit="record", desc="shard", disable=None) as bar:
        result = build_shards(qa, out, cfg, progress=bar.update)
    if result.skipped:
        typer.echo("nothing to do: an identical build is already there (same inputs and config)")
    for line in inspect_lines(out):
        typer.echo(line)
    if result.heldout is not None:
        for line in inspect_lines(result.heldout.out_dir):
            typer.echo(line)


def inspect_cmd(
    path: Path = typer.Argument(..., help="A folder written by `lengthwise shard` (or any stage)."),
) -> None:
    """Print a build's manifest summary and a text histogram of its buckets."""
    from pipeline.stages.shard import inspect_lines

    for line in inspect_lines(path):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add ``shard`` and ``inspect`` to ``app``."""
    app.command("shard")(shard_cmd)
    app.command("inspect")(inspect_cmd)
