"""``lengthwise eval``: retrieval probes by length x depth, perplexity and QA accuracy, base vs adapters."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli.common import SET_HELP

# RULER task names (trainer.evaluation.ruler), plus the teacher-free names they were called before.
PROBE_TASKS = (
    "passkey",
    "niah_multikey",
    "niah_multivalue",
    "niah_multiquery",
    "vt",
    "cwe",
    "kv_retrieval",
    "needle_multikey",
    "variable_tracking",
)


def eval_cmd(
    config: Path = typer.Option(
        None,
        "--config",
        help="Eval YAML, or a run YAML (its eval section, with the run's model and adapters).",
    ),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
    model: str = typer.Option(None, help="Base model folder or hub ID (default: packaged SmolLM2)."),
    adapter: list[Path] = typer.Option([], help="Adapter folder(s) to compare with the base (repeatable)."),
    haystack: list[Path] = typer.Option(
        [], help="Documents for the probe haystacks (default samples/corpus)."
    ),
    lengths: str = typer.Option(
        None,
        help="Context lengths in tokens, e.g. 512,1k,2k (default: the adapters' trained stage lengths, "
        "else 512,1024).",
    ),
    depths: str = typer.Option(None, help="Evidence depths in percent (default 0,50,100)."),
    tasks: str = typer.Option(
        None, help=f"Probe tasks: {', '.join(PROBE_TASKS[:7])} (default passkey,niah_multikey); QA from --qa."
    ),
    per_cell: int = typer.Option(None, min=1, help="Probes per (task, length, depth) (default 4)."),
    data: Path = typer.Option(
        None, help="Tokenized shards for perplexity by length (use SHARDS/heldout from `shard --heldout`)."
    ),
    qa: Path = typer.Option(
        None, help="QA folder or a build's qa/ root for EM/F1; only held-out records when --data is held out."
    ),
    out: Path = typer.Option(None, help="Report folder (default out/eval)."),
    no_base: bool = typer.Option(False, help="Skip the base model."),
) -> None:
    """Evaluate long-context use and write results.json, report.md and plots.

    Options given on the command line win over the config file.
    """
    from pipeline.config import choice_list, float_list, int_list

    given = {
        "model": model,
        "adapters": [str(a) for a in adapter] or None,
        "haystack": [str(h) for h in haystack] or None,
        "lengths": int_list(lengths, "--lengths") if lengths else None,
        "depths": float_list(depths, "--depths") if depths else None,
        "tasks": choice_list(tasks, "--tasks", PROBE_TASKS) if tasks else None,
        "per_cell": per_cell,
        "data": str(data) if data else None,
        "qa": str(qa) if qa else None,
        "out": str(out) if out else None,
        "include_base": False if no_base else None,
    }
    given = {k: v for k, v in given.items() if v is not None}
    _check_depths(given.get("depths", []))
    cfg = _load(config, overrides, given)
    from trainer.evaluation.api import evaluate

    result = evaluate(cfg)
    for m in result["models"]:
        acc = m["probe_accuracy_by_length"]
        typer.echo(
            f"{m['name']}: probe accuracy by length "
            + ", ".join(
                f"{k}: {v['accuracy']:.2f} [{v['lo']:.2f}, {v['hi']:.2f}] n={v['n']}" for k, v in acc.items()
            )
        )
    typer.echo(f"wrote {cfg.out}/report.md")


def _check_depths(depths: list[float]) -> None:
    from pipeline.options import usage_error

    if any(not 0 <= d <= 100 for d in depths):
        usage_error("--depths", ",".join(map(str, depths)), "percentages between 0 and 100")


def _load(config: Path | None, overrides: list[str], given: dict):
    """The eval config: file (if any) + --set, then the explicit command-line options on top."""
    from pipeline.config import validate_raw

    if config is None:
        from pipeline.config import apply_overrides
        from trainer.evaluation.api import EvalConfig

        raw = apply_overrides({"haystack": ["samples/corpus"], **given}, overrides)
        return validate_raw(EvalConfig, raw, "eval")
    from flows.config import load_eval_config

    cfg = load_eval_config(config, overrides)
    return validate_raw(type(cfg), {**cfg.model_dump(exclude_unset=False), **given}, "eval")


def register(app: typer.Typer) -> None:
    """Add ``eval`` to ``app``."""
    app.command("eval")(eval_cmd)
