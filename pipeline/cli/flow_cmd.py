"""``lengthwise build``, ``lengthwise run`` and ``lengthwise serve``: the Prefect flows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer


def _prefect_defaults() -> None:
    """Quiet local defaults, set before Prefect is imported (explicit settings win)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_cmd(
    config: Path = typer.Argument(..., help="Build YAML (or a run YAML: its build section)."),
) -> None:
    """Build tokenized shards from sources with Prefect (resumable, cached)."""
    _prefect_defaults()
    from flows.build import build_with_runner
    from flows.config import load_build_config
    from flows.server import prefect_api

    cfg = load_build_config(config)
    with prefect_api():
        typer.echo(f"shards: {build_with_runner(cfg)}")


def run_cmd(
    config: Path = typer.Argument(..., help="Run YAML (build + train + eval), e.g. configs/demo.yaml."),
) -> None:
    """Run everything end to end: build -> train -> evaluate."""
    _prefect_defaults()
    from flows.config import load_run_config
    from flows.run import run_all
    from flows.server import prefect_api

    cfg = load_run_config(config)
    with prefect_api():
        typer.echo(json.dumps(run_all(cfg), indent=2))


def serve_cmd(
    config: Path = typer.Argument(..., help="Build YAML."),
    cron: str = typer.Option("0 3 * * *", help="Cron schedule (UTC)."),
    name: str = typer.Option("scheduled", help="Deployment name."),
) -> None:
    """Serve the build flow on a cron schedule (set PREFECT_API_URL to use an existing server)."""
    _prefect_defaults()
    from flows.serve import serve
    from flows.server import prefect_api

    with prefect_api():
        serve(config, cron, name)


def register(app: typer.Typer) -> None:
    """Add the flow commands to ``app``."""
    app.command("build")(build_cmd)
    app.command("run")(run_cmd)
    app.command("serve")(serve_cmd)
