"""Config files: YAML loading, ``--set`` overrides, the run's base model, errors with "did you mean".

Generic over pydantic models, so a field added to any config (stage, train, eval) is loadable,
overridable and documented without touching this module.
"""

from __future__ import annotations

from pydantic import BaseModel

from pipeline.options import usage_error

SECTION_ALIASES: dict[str, str] = {
    # axolotl / LLaMA-Factory / HF Trainer names -> where lengthwise keeps the same setting
    "base_model": "model (top level of a run config, or train.model)",
    "model_name_or_path": "model (top level of a run config, or train.model)",
    "tokenizer_config": "model, or shard.tokenizer",
    "sequence_len": "train.stages[].max_length (one per curriculum stage)",
    "cutoff_len": "train.stages[].max_length (one per curriculum stage)",
    "max_seq_length": "train.stages[].max_length (one per curriculum stage)",
    "lora_r": "train.lora.r",
    "lora_rank": "train.lora.r",
    "lora_alpha": "train.lora.alpha",
    "lora_dropout": "train.lora.dropout",
    "lora_target_modules": "train.lora.targets",
    "lora_target": "train.lora.targets",
    "rank": "train.lora.r",
    "target_modules": "train.lora.targets",
    "learning_rate": "train.stages[].lr",
    "lr": "train.stages[].lr",
    "warmup_steps": "train.stages[].warmup_steps",
    "max_steps": "train.stages[].steps",
    "num_epochs": "train.stages[].steps or .tokens",
    "num_train_epochs": "train.stages[].steps or .tokens",
    "micro_batch_size": "train.tokens_per_step (tokens, not rows: packs are filled to the stage length)",
    "gradient_accumulation_steps": "train.tokens_per_step (gradients are summed over the step's packs)",
    "per_device_train_batch_size": "train.tokens_per_step",
    "datasets": "build.sources (kind: chat for conversation files)",
    "dataset": "build.sources (kind: chat for conversation files)",
    "chat_template": "shard.chat_template (a Jinja file)",
    "template": "shard.chat_template (a Jinja file), or shard.format: completion",
    "train_on_inputs": "shard.context_weight (loss on the prompt/context tokens)",
    "bf16": "train.precision: bf16",
    "output_dir": "train.output_dir / build.output_dir / eval.out",
}


def _fields_at(model: type[BaseModel] | None, loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that owns the field at ``loc`` (list indexes and unions are walked through)."""
    import typing

    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = _model_in(field.annotation, typing)
    return model


def _model_in(annotation, typing) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg, typing)
        if found is not None:
            return found
    return None


def did_you_mean(name: str, model: type[BaseModel] | None) -> str:
    """A hint for an unknown key: a known alias (axolotl, LLaMA-Factory) or the closest field name."""
    import difflib

    if name in SECTION_ALIASES:
        return f"did you mean {SECTION_ALIASES[name]}?"
    if model is not None:
        close = difflib.get_close_matches(name, list(model.model_fields), n=1, cutoff=0.6)
        if close:
            return f"did you mean {close[0]!r}?"
        return "known keys: " + ", ".join(model.model_fields)
    return "remove it or fix its spelling"


def problems(exc, model: type[BaseModel] | None = None) -> list[str]:
    """One line per validation error: where, what, and how to fix it."""
    out = []
    for e in exc.errors():
        loc = tuple(e["loc"])
        where = ".".join(map(str, loc)) or "(top level)"
        if e["type"] == "extra_forbidden":
            hint = did_you_mean(str(loc[-1]), _fields_at(model, loc[:-1]))
        else:
            hint = {
                "missing": "add it",
                "literal_error": "use one of the allowed values",
            }.get(e["type"], "fix the value")
        out.append(f"{where}: {e['msg']} ({hint})")
    return out


def make(model_cls: type[BaseModel], source: str, /, **values):
    """Validate ``values`` into ``model_cls``; every problem is reported at once as a ConfigError.

    ``model_cls`` and ``source`` are positional-only, so fields named ``model`` or ``source`` pass through.
    """
    from pydantic import ValidationError

    from pipeline.errors import ConfigError

    try:
        return model_cls.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(problems(exc, model_cls), source) from exc


def load_raw(path) -> dict:
    """A YAML file as a mapping; a read or syntax problem is a ConfigError naming the file."""
    from pathlib import Path

    import yaml

    from pipeline.errors import ConfigError

    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([f"cannot read it: {exc}"], str(path)) from exc
    if not isinstance(raw, dict):
        raise ConfigError(["expected a mapping of keys to values at the top level"], str(path))
    return raw


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...], prefix: str = "") -> dict:
    """Apply ``--set key.sub=value`` overrides (values parsed as YAML: numbers, lists, booleans).

    ``prefix`` names the section a command reads (``train``), so ``lora.r=8`` and ``train.lora.r=8``
    mean the same thing there. List items are addressed by index: ``stages.0.lr=1e-4``.
    """
    import copy

    import yaml

    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            usage_error("--set", item, "KEY.SUB=VALUE, e.g. --set lora.r=8")
        parts = key.strip().split(".")
        if prefix and parts[0] != prefix and prefix in out:
            parts = [prefix, *parts]
        node = out
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part, parts[i + 1], item)
        last = parts[-1]
        parsed = yaml.safe_load(value) if value.strip() else None  # `key=`: back to the default
        if isinstance(node, list):
            node[_index(node, last, item)] = parsed
        elif isinstance(node, dict):
            if parsed is None:
                node.pop(last, None)
            else:
                node[last] = parsed
        else:
            usage_error("--set", item, f"a path through mappings; {parts[-2]!r} is a plain value")
    return out


def _child(node, part: str, nxt: str, item: str):
    if isinstance(node, list):
        return node[_index(node, part, item)]
    if not isinstance(node, dict):
        usage_error("--set", item, f"a path through mappings; {part!r} is inside a plain value")
    if node.get(part) is None:
        node[part] = [] if nxt.isdigit() else {}
    if not isinstance(node[part], dict | list):
        usage_error("--set", item, f"a path through mappings; {part!r} is a plain value")
    return node[part]


def _index(node: list, part: str, item: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        usage_error("--set", item, f"a list index below {len(node)} at {part!r}")
    return int(part)


def validate_raw(model_cls: type[BaseModel], raw: dict, source: str):
    """Validate a mapping into ``model_cls``; every problem listed with a fix (and "did you mean")."""
    from pydantic import ValidationError

    from pipeline.errors import ConfigError

    try:
        return model_cls.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_with_cross_field(problems(exc, model_cls), model_cls, raw), source) from exc


def _with_cross_field(found: list[str], model_cls, raw) -> list[str]:
    """Add problems between fields (a model's ``raw_problems(raw)``, found even when fields are invalid).

    pydantic runs ``mode="after"`` checks only once every field is valid; listing them here reports
    them together with the field errors. Their after-validator lines are then dropped as duplicates.
    """
    check = getattr(model_cls, "raw_problems", None)
    cross = check(raw) if check and isinstance(raw, dict) else []
    if not cross:
        return found
    return [p for p in found if "Value error" not in p] + cross


def load_yaml(path, model: type[BaseModel], overrides: list[str] | tuple[str, ...] = ()):
    """Load ``path`` into ``model``; every problem is reported at once with where it is and a fix."""
    return validate_raw(model, apply_overrides(load_raw(path), overrides), str(path))


#: Where a run config's top-level ``model`` goes when a section leaves it unset.
MODEL_TARGETS: tuple[tuple[str, ...], ...] = (
    ("build", "chunker", "tokenizer"),
    ("build", "synth", "student_tokenizer"),
    ("build", "shard", "tokenizer"),
    ("train", "model"),
    ("eval", "model"),
)


def apply_base_model(raw: dict) -> dict:
    """Give every stage the run's ``model`` (tokenizer, chat template, weights) unless it names its own."""
    model = raw.get("model")
    if not model:
        return raw
    out = dict(raw)
    for path in MODEL_TARGETS:
        if path[0] not in out or out[path[0]] is None:
            continue
        out[path[0]] = _set_default(out[path[0]], path[1:], model)
    return out


def _set_default(node, path: tuple[str, ...], value):
    if isinstance(node, BaseModel):
        node = node.model_dump(exclude_unset=True)
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if len(path) == 1:
        if node.get(path[0]) is None:
            node[path[0]] = value
        return node
    node[path[0]] = _set_default(node.get(path[0]) or {}, path[1:], value)
    return node
