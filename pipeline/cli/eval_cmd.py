"""``lengthwise eval``: retrieval probes by length x depth, perplexity and QA accuracy, base vs adapters."""

from __future__ import annotations

from pathlib import Path

import typer


def eval_cmd(
    model: str = typer.Option(None, help="Base model folder or hub ID (default: packaged SmolLM2)."),
    adapter: list[Path] = typer.Option([], help="Adapter folder(s) to compare with the base (repeatable)."),
    haystack: list[Path] = typer.Option([Path("samples/corpus")], help="Documents for the probe haystacks."),
    lengths: str = typer.Option(
        None, help="Context lengths in tokens (default: the adapters' trained stage lengths, else 512,1024)."
    ),
    depths: str = typer.Option("0,50,100", help="Evidence depths in percent."),
    tasks: str = typer.Option(
        "passkey,niah_multikey",
        help="Probe tasks: passkey, niah_multikey, niah_multivalue, niah_multiquery, vt, cwe (QA comes from --qa).",
    ),
    per_cell: int = typer.Option(4, help="Probes per (task, length, depth): 3 depths x 4 = n 12 per length."),
    data: Path = typer.Option(
        None, help="Tokenized shards for perplexity by length (use SHARDS/heldout from `shard --heldout`)."
    ),
    qa: Path = typer.Option(
        None, help="QA folder or a build's qa/ root for EM/F1; only held-out records when --data is held out."
    ),
    out: Path = typer.Option(Path("out/eval"), help="Report folder."),
    no_base: bool = typer.Option(False, help="Skip the base model."),
) -> None:
    """Evaluate long-context use and write results.json, report.md and plots."""
    from trainer.evaluation.api import EvalConfig, evaluate

    cfg = EvalConfig(
        model=model,
        adapters=[str(a) for a in adapter],
        include_base=not no_base,
        haystack=[str(h) for h in haystack],
        lengths=[int(x) for x in lengths.split(",")] if lengths else None,
        depths=[float(x) for x in depths.split(",")],
        tasks=tasks.split(","),
        per_cell=per_cell,
        data=str(data) if data else None,
        qa=str(qa) if qa else None,
        out=str(out),
    )
    result = evaluate(cfg)
    for m in result["models"]:
        acc = m["probe_accuracy_by_length"]
        typer.echo(
            f"{m['name']}: probe accuracy by length "
            + ", ".join(
                f"{k}: {v['accuracy']:.2f} [{v['lo']:.2f}, {v['hi']:.2f}] n={v['n']}" for k, v in acc.items()
            )
        )
    typer.echo(f"wrote {out}/report.md")


def register(app: typer.Typer) -> None:
    """Add ``eval`` to ``app``."""
    app.command("eval")(eval_cmd)
