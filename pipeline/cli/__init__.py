"""The ``lengthwise`` command line. Each subcommand calls library functions; heavy imports are lazy."""

from __future__ import annotations

import typer

from pipeline.cli import common
from pipeline.cli.basic import register as _register_basic
from pipeline.cli.chunk_cmd import register as _register_chunk
from pipeline.cli.config_docs_cmd import register as _register_config_docs
from pipeline.cli.eval_cmd import register as _register_eval
from pipeline.cli.export_cmd import register as _register_export
from pipeline.cli.flow_cmd import register as _register_flows
from pipeline.cli.shard_cmd import register as _register_shard
from pipeline.cli.synth_cmd import register as _register_synth
from pipeline.cli.train_cmd import register as _register_train

app = typer.Typer(
    name="lengthwise",
    help="Turn a pile of long documents into a long-context fine-tuned model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    if version:
        typer.echo(f"lengthwise {common.version()}")
        raise typer.Exit()


_register_basic(app)
_register_chunk(app)
_register_synth(app)
_register_shard(app)
_register_train(app)
_register_eval(app)
_register_flows(app)
_register_export(app)
_register_config_docs(app)


def main() -> None:
    """Console-script entry point."""
    common.run_app(app)
