"""``lengthwise config-docs``: the configuration reference (docs/config.md), generated from the models."""

from __future__ import annotations

import enum
import json
import typing
from pathlib import Path

import typer
from pydantic import BaseModel
from pydantic_core import PydanticUndefined, to_jsonable_python

HEADER = """# Configuration reference

Generated from the pydantic models by `lengthwise config-docs --out docs/config.md`; a test fails when
it is stale. A run YAML (`lengthwise run|build|train|eval`) has the sections below; `build`, `train`
and `eval` also read a YAML of their own section alone. Any field can be set from the command line
with `--set key.sub=value` (values are YAML: `--set lora.targets=[q_proj,v_proj]`); list items by
index (`--set stages.0.lr=1e-4`). Unknown keys are errors with a "did you mean" hint, including the
usual axolotl / LLaMA-Factory names (`base_model` -> `model`, `lora_r` -> `train.lora.r`, ...).
"""


def _type(annotation) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " \\| ".join(_type(a) for a in args)
    if origin is list:
        return f"list[{_type(args[0])}]"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(json.dumps(m.value) for m in annotation)
    return getattr(annotation, "__name__", str(annotation)).replace("Annotated", "")


def _default(field) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except ValueError:  # a default that is only valid once other fields are set
            return "see below"
        if isinstance(value, BaseModel):
            return "see below"
        text = json.dumps(to_jsonable_python(value))
        return f"`{text}`" if len(text) < 70 else f"`{text[:60]}...`"
    if field.default is PydanticUndefined:
        return "**required**"
    return f"`{json.dumps(to_jsonable_python(field.default))}`"


def _models_in(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models_in(a)]


def _section(path: str, model: type[BaseModel], out: list[str], seen: set) -> None:
    out += [f"## `{path}`", "", (model.__doc__ or "").strip().split("\n\n")[0], ""]
    out += ["| key | type | default | description |", "|---|---|---|---|"]
    nested = []
    for name, field in model.model_fields.items():
        desc = " ".join((field.description or "").split()).replace("|", "\\|")
        out.append(f"| `{name}` | {_type(field.annotation)} | {_default(field)} | {desc} |")
        for sub in _models_in(field.annotation):
            suffix = "[]" if typing.get_origin(field.annotation) is list else ""
            nested.append((f"{path}.{name}{suffix}" if path != "(top level)" else f"{name}{suffix}", sub))
    out.append("")
    for sub_path, sub in nested:
        if (sub_path, sub) not in seen:
            seen.add((sub_path, sub))
            _section(sub_path, sub, out, seen)


def render_config_docs() -> str:
    """The Markdown reference of every run-config field, from the pydantic models."""
    from flows.config import RunConfig

    out = [HEADER]
    _section("(top level)", RunConfig, out, set())
    return "\n".join(out).rstrip() + "\n"


def config_docs_cmd(
    out: Path = typer.Option(None, help="Write here (e.g. docs/config.md) instead of printing."),
) -> None:
    """Print (or write) the configuration reference generated from the config models."""
    text = render_config_docs()
    if out is None:
        typer.echo(text, nl=False)
        return
    from data_contracts.io import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add ``config-docs`` to ``app``."""
    app.command("config-docs")(config_docs_cmd)
