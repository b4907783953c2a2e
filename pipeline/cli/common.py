"""Shared CLI helpers: version, error reporting, offline defaults."""

from __future__ import annotations

import os
import sys

import typer

from data_contracts import ContractError
from pipeline.errors import PipelineError
from pipeline.version import version

__all__ = ["run_app", "version"]


def run_app(app: typer.Typer) -> None:
    """Run the CLI; expected failures print one clear line instead of a traceback."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app(standalone_mode=False)
    except (ContractError, PipelineError, FileNotFoundError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
