"""``lengthwise build``, ``lengthwise run`` and ``lengthwise serve``: the Prefect flows."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pipeline.cli.common import SET_HELP, prefect_defaults


def _config(config: Path | None, option: Path | None) -> Path:
    path = option or config
    if path is None:
        from pipeline.options import usage_error

        usage_error("CONFIG", None, "a config file: CONFIG.yaml or --config CONFIG.yaml")
    return path


def build_cmd(
    config: Path = typer.Argument(None, help="Build YAML (or a run YAML: its build section)."),
    config_opt: Path = typer.Option(None, "--config", help="Same as the CONFIG argument."),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Build tokenized shards from sources with Prefect (resumable, cached)."""
    prefect_defaults()
    from flows.build import build_with_runner
    from flows.config import load_build_config

    cfg = load_build_config(_config(config, config_opt), overrides)
    typer.echo(f"shards: {build_with_runner(cfg)}")


def run_cmd(
    config: Path = typer.Argument(
        None, help="Run YAML (model + build + train + eval), e.g. configs/demo.yaml."
    ),
    config_opt: Path = typer.Option(None, "--config", help="Same as the CONFIG argument."),
    overrides: list[str] = typer.Option(
        [], "--set", help=SET_HELP + " Keys start with the section: train.lora.r=8."
    ),
) -> None:
    """Run everything end to end: build -> train -> evaluate."""
    prefect_defaults()
    from flows.config import load_run_config
    from flows.run import run_all

    cfg = load_run_config(_config(config, config_opt), overrides)
    typer.echo(json.dumps(run_all(cfg), indent=2))


def serve_cmd(
    config: Path = typer.Argument(..., help="Build YAML (or a run YAML: its build section)."),
    cron: str = typer.Option("0 3 * * *", help="Cron schedule (UTC), five fields."),
    name: str = typer.Option("scheduled", help="Deployment name."),
) -> None:
    """Serve the build flow on a cron schedule (set PREFECT_API_URL to use an existing server)."""
    from pipeline.options import cron_expr

    cron_expr(cron, "--cron")
    prefect_defaults()
    from flows.config import load_build_config
    from flows.serve import serve

    load_build_config(config)  # a bad config fails here, before a server starts
    serve(config, cron, name)


def register(app: typer.Typer) -> None:
    """Add the flow commands to ``app``."""
    app.command("build")(build_cmd)
    app.command("run")(run_cmd)
    app.command("serve")(serve_cmd)
