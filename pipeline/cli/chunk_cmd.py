"""``lengthwise chunk``: chunk files into contract shards (or JSONL) with a quality summary."""

from __future__ import annotations

from pathlib import Path

import typer


def chunk_cmd(
    paths: list[Path] = typer.Argument(..., help="Files or folders (.txt .md .rst .jsonl .parquet)."),
    method: str = typer.Option("recursive", help="recursive | sliding | semantic"),
    max_tokens: int = typer.Option(512, min=16, help="Hard limit per chunk, in the tokenizer's tokens."),
    min_tokens: int = typer.Option(None, min=0, help="Soft minimum (default max/4)."),
    target_tokens: int = typer.Option(None, min=1, help="recursive: preferred size (default max)."),
    stride_tokens: int = typer.Option(
        None, min=1, help="sliding: distance between window starts (default 3/4 max)."
    ),
    threshold: str = typer.Option(
        "percentile", help="semantic: percentile | stddev | interquartile | gradient"
    ),
    tokenizer: str = typer.Option(None, help="Student tokenizer: tokenizer.json, model folder or hub ID."),
    embedder: str = typer.Option(
        None, help="semantic: sentence-transformers or model2vec model (default MiniLM)."
    ),
    embedder_backend: str = typer.Option(
        "torch", help="semantic: torch (sentence-transformers) | onnx | onnx-int8 (~2x faster on CPU)."
    ),
    out: Path = typer.Option(Path("out/chunks"), help="Output folder."),
    output_format: str = typer.Option("arrow", "--format", help="arrow (shards + manifest) or jsonl (also)."),
    text_field: str = typer.Option("text", help="Text column of JSONL/Parquet inputs."),
    workers: int = typer.Option(None, min=1, help="Processes for large batches (default: all cores)."),
) -> None:
    """Chunk documents with exact offsets and a hard token budget."""
    from tqdm import tqdm

    from pipeline.config import ChunkerConfig, choice, make
    from pipeline.io.readers import expand_paths
    from pipeline.stages.chunk import chunk_corpus

    method = choice(method, "--method", ("recursive", "sliding", "semantic"))
    threshold = choice(threshold, "--threshold", ("percentile", "stddev", "interquartile", "gradient"))
    embedder_backend = choice(embedder_backend, "--embedder-backend", ("torch", "onnx", "onnx-int8"))
    output_format = choice(output_format, "--format", ("arrow", "jsonl"))
    cfg = make(
        ChunkerConfig,
        "chunk",
        method=method,
        tokenizer=tokenizer,
        max_tokens=max_tokens,
        min_tokens=min_tokens,
        target_tokens=target_tokens,
        stride_tokens=stride_tokens,
        threshold=threshold,
        embedder=embedder,
        embedder_backend=embedder_backend,
    )
    files, _ = expand_paths(paths)
    with tqdm(total=len(files), unit="doc", desc=f"chunk ({method})", disable=None) as bar:
        result = chunk_corpus(
            paths,
            out,
            cfg,
            text_field=text_field,
            output_format=output_format,
            workers=workers,
            progress=bar.update,
        )
    for p in result.problems:
        typer.secho(f"skipped {p.source}: {p.reason}", fg=typer.colors.YELLOW, err=True)
    typer.echo(result.stats.line())
    typer.echo(f"wrote {result.out_dir} ({len(result.manifest.shards)} shards, manifest.json)")


def register(app: typer.Typer) -> None:
    """Add ``chunk`` to ``app``."""
    app.command("chunk")(chunk_cmd)
