"""``lengthwise shard`` and ``lengthwise inspect``."""

from __future__ import annotations

from pathlib import Path

import typer


def _split_inputs(inputs: list[str], input_format: str, system_prompt: str | None):
    """QA folders (they have a manifest.json) vs chat/instruction data (files, folders, hub IDs)."""
    from pipeline.config import ChatSource, make
    from pipeline.io.chat_readers import is_datasets_folder

    qa, chat = [], []
    for item in inputs:
        path = Path(item)
        if (path / "manifest.json").exists():
            qa.append(path)
            continue
        local = path.exists() and not is_datasets_folder(path)
        where = {"path": item} if local else {"dataset": item}
        if not path.exists() and not _looks_like_hub_id(item):
            from pipeline.errors import InputError

            raise InputError(
                f"{item}: no such file or folder; pass a QA folder from `lengthwise synth`, a chat file "
                "(.jsonl/.json/.parquet), a datasets folder or a hub dataset ID (owner/name)"
            )
        chat.append(make(ChatSource, "shard", format=input_format, system_prompt=system_prompt, **where))
    return qa, chat


def _looks_like_hub_id(item: str) -> bool:
    parts = item.split("/")
    return len(parts) == 2 and all(parts) and not item.endswith((".jsonl", ".json", ".parquet"))


def shard_cmd(
    inputs: list[str] = typer.Argument(
        ...,
        help="QA folders written by `lengthwise synth`, or chat/instruction data: .jsonl/.json/.parquet files "
        "(OpenAI messages, ShareGPT, Alpaca, LongAlign), folders of them, a datasets folder or a hub ID.",
    ),
    tokenizer: str = typer.Option(None, help="Student model folder or hub ID (chat template + tokenizer)."),
    buckets: str = typer.Option(
        "512,1024,2048,4096,8192,16384,32768,65536", help="Bucket edges in tokens (1k = 1024)."
    ),
    context_weight: float = typer.Option(0.0, min=0.0, help="Loss weight on document tokens (LIFT-style)."),
    answer_weight: float = typer.Option(1.0, min=0.0, help="Loss weight on answer tokens."),
    heldout: float = typer.Option(
        0.0,
        min=0.0,
        max=0.99,
        help="Share of documents written to OUT/heldout for evaluation and never trained on.",
    ),
    input_format: str = typer.Option(
        "auto", help="Chat rows: auto | messages | sharegpt | alpaca | longalign."
    ),
    assistant_turns: str = typer.Option(
        "all", help="Chat rows: loss on all assistant turns, or the last one only."
    ),
    system_prompt: str = typer.Option(None, help="System turn for records that have none."),
    chat_template: Path = typer.Option(
        None, help="A Jinja file that replaces the tokenizer's chat template."
    ),
    completion: bool = typer.Option(
        False, "--completion", help="Plain completion format (no chat template): for base models."
    ),
    out: Path = typer.Option(Path("out/shards"), help="Output folder."),
) -> None:
    """Tokenize QA records or chat data into length-sorted, bucketed Arrow shards with a manifest and card.

    Bad chat rows are listed with file and line and skipped; the rest goes on.
    """
    from tqdm import tqdm

    from pipeline.config import ShardConfig, choice, int_list, make
    from pipeline.io.chat_readers import CHAT_FORMATS
    from pipeline.stages.shard import build_shards, inspect_lines

    input_format = choice(input_format, "--input-format", CHAT_FORMATS)
    if chat_template is not None and not chat_template.is_file():
        from pipeline.options import usage_error

        usage_error("--chat-template", str(chat_template), "an existing Jinja file")
    cfg = make(
        ShardConfig,
        "shard",
        tokenizer=tokenizer,
        bucket_edges=int_list(buckets, "--buckets"),
        context_weight=context_weight,
        answer_weight=answer_weight,
        heldout_fraction=heldout,
        system_prompt=system_prompt,
        assistant_turns=choice(assistant_turns, "--assistant-turns", ("all", "last")),
        chat_template=str(chat_template) if chat_template else None,
        format="completion" if completion else "chat",
    )
    qa, chat = _split_inputs(inputs, input_format, system_prompt)
    with tqdm(unit="record", desc="shard", disable=None) as bar:
        result = build_shards(qa, out, cfg, progress=bar.update, chat=chat)
    if result.skipped:
        typer.echo("nothing to do: an identical build is already there (same inputs and config)")
    for line in inspect_lines(out):
        typer.echo(line)
    if result.heldout is not None:
        for line in inspect_lines(result.heldout.out_dir):
            typer.echo(line)
    if result.manifest.rows == 0:
        typer.secho(f"warning: no usable records in {', '.join(inputs)}", fg=typer.colors.YELLOW, err=True)


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
