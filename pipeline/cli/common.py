"""Shared CLI helpers: version, error reporting, the ``--config``/``--set`` options."""

from __future__ import annotations

import os
import sys

import typer

from data_contracts import ContractError
from pipeline.errors import PipelineError
from pipeline.version import version

__all__ = ["SET_HELP", "prefect_defaults", "run_app", "version"]

SET_HELP = "Override a config field: --set lora.r=8 --set stages.0.lr=1e-4 (values are YAML; repeatable)."


def prefect_defaults() -> None:
    """Quiet local Prefect defaults, set before Prefect is imported (explicit settings win).

    Nothing here forces offline mode: the embedded default models need no network, and a user who is
    online can name hub models and datasets.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def _click_exceptions() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(usage errors, other click errors): typer >= 0.29 vendors its own click, older ones use click."""
    import click

    usage, other = [click.UsageError], [click.ClickException]
    try:
        from typer._click.exceptions import ClickException, UsageError
    except ImportError:  # typer that uses click itself
        pass
    else:
        usage.append(UsageError)
        other.append(ClickException)
    return tuple(usage), tuple(other)


def _command_path(exc) -> str:
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        return ctx.command_path
    sub = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    return f"lengthwise {sub}" if sub else "lengthwise"


def _usage_line(exc) -> str:
    cmd = _command_path(exc)
    msg = " ".join(exc.format_message().split())
    return f"error: {cmd}: {msg} (see `{cmd} --help`)"


def run_app(app: typer.Typer) -> None:
    """Run the CLI; expected failures print one clear line instead of a traceback.

    Usage errors (a bad option value, a missing argument, an unknown option) exit with 2, failures
    of the work itself with 1.
    """
    usage, other = _click_exceptions()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app(standalone_mode=False)
    except usage as exc:
        typer.secho(_usage_line(exc), fg=typer.colors.RED, err=True)
        sys.exit(2)
    except other as exc:
        typer.secho(f"error: {' '.join(exc.format_message().split())}", fg=typer.colors.RED, err=True)
        sys.exit(exc.exit_code)
    except (ContractError, PipelineError, FileNotFoundError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
