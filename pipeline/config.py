"""Typed stage configurations (pydantic), shared by the CLI, the flows and YAML configs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class StageConfig(BaseModel):
    """Base for stage configs: strict (a typo in YAML is an error, not a silent default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ChunkerConfig(StageConfig):
    """Which chunker to build and how."""

    method: Literal["recursive", "sliding", "semantic"] = "recursive"
    tokenizer: str | None = Field(
        None, description="student tokenizer: path, hub ID or 'smollm2-135m' (default)"
    )
    max_tokens: int = Field(512, ge=16)
    min_tokens: int | None = Field(None, ge=0)
    target_tokens: int | None = Field(
        None, ge=1, description="recursive: preferred size (default max_tokens)"
    )
    stride_tokens: int | None = Field(None, ge=1, description="sliding: distance between window starts")
    embedder: str | None = Field(
        None,
        description="semantic: sentence-transformers/model2vec model (default MiniLM), or 'hashing'",
    )
    embedder_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "torch", description="semantic: run the model with sentence-transformers or ONNX Runtime (fast extra)"
    )
    threshold: Literal["percentile", "stddev", "interquartile", "gradient"] = "percentile"
    threshold_amount: float | None = None


def build_chunker(cfg: ChunkerConfig):
    """Build the chunker a :class:`ChunkerConfig` describes."""
    from pipeline.chunking import (
        HashingEmbedder,
        OnnxEmbedder,
        RecursiveChunker,
        SemanticChunker,
        SentenceTransformerEmbedder,
        SlidingWindowChunker,
    )

    match cfg.method:
        case "recursive":
            return RecursiveChunker(
                tokenizer=cfg.tokenizer,
                max_tokens=cfg.max_tokens,
                min_tokens=cfg.min_tokens,
                target_tokens=cfg.target_tokens,
            )
        case "sliding":
            return SlidingWindowChunker(
                tokenizer=cfg.tokenizer, max_tokens=cfg.max_tokens, stride_tokens=cfg.stride_tokens
            )
        case "semantic":
            embedder = None
            if cfg.embedder == "hashing":
                embedder = HashingEmbedder()
            elif cfg.embedder_backend != "torch":
                embedder = OnnxEmbedder(cfg.embedder, quantize=cfg.embedder_backend == "onnx-int8")
            elif cfg.embedder:
                embedder = SentenceTransformerEmbedder(cfg.embedder)
            return SemanticChunker(
                tokenizer=cfg.tokenizer,
                max_tokens=cfg.max_tokens,
                min_tokens=cfg.min_tokens,
                embedder=embedder,
                threshold=cfg.threshold,
                threshold_amount=cfg.threshold_amount,
            )
    raise ValueError(f"unknown chunking method {cfg.method!r}")


SELF_INSTRUCT_TASKS = ("general", "summary", "multi_hop", "extraction")
TEACHER_FREE_TASKS = ("passkey", "needle_multikey", "kv_retrieval", "variable_tracking")


class TeacherConfig(StageConfig):
    """Which teacher writes the self-instruct QA (``none``: teacher-free tasks only)."""

    kind: Literal["openai", "local", "none"] = "local"
    model: str | None = Field(None, description="served model name (openai) or model folder/hub ID (local)")
    base_url: str | None = Field(None, description="openai: server root including /v1")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0)
    concurrency: int = Field(4, ge=1)
    batch_size: int = Field(8, ge=1, description="local: prompts generated together")


class SynthConfig(StageConfig):
    """Self-instruct and teacher-free synthesis settings."""

    tasks: list[Literal["general", "summary", "multi_hop", "extraction"]] = list(SELF_INSTRUCT_TASKS)
    questions_per_doc: int = Field(4, ge=0)
    target_lengths: list[int] = Field(default_factory=lambda: [1024, 4096])
    teacher_free_tasks: list[Literal["passkey", "needle_multikey", "kv_retrieval", "variable_tracking"]] = (
        list(TEACHER_FREE_TASKS)
    )
    teacher_free_per_length: int = Field(2, ge=0, description="records per (task, target length)")
    student_tokenizer: str | None = Field(None, description="student model folder/hub ID (default SmolLM2)")
    prompt_version: str = "v1"
    evidence_mode: Literal["auto", "teacher", "anchored"] = Field(
        "auto",
        description="teacher: the teacher quotes its evidence; anchored: key sentences are picked from the chunk "
        "and the teacher asks about them (works with small teachers); auto: anchored for local teachers",
    )
    temperature: float = Field(0.3, ge=0)
    frequency_penalty: float = Field(
        0.0,
        ge=0,
        le=2,
        description="discourages loops; keep 0 for grounded QA (answers must reuse the source's words)",
    )
    max_new_tokens: int = Field(256, ge=16)
    max_answer_tokens: int = Field(256, ge=8)
    min_support: float = Field(0.5, ge=0, le=1)
    closed_book_check: bool = False
    dedup_threshold: float = Field(0.7, gt=0, le=1)
    depth_bins: int = Field(10, ge=1)
    seed: int = 0


DEFAULT_BUCKETS = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]


class ShardConfig(StageConfig):
    """Tokenize QA records with the student's chat template into length-bucketed shards."""

    tokenizer: str | None = Field(None, description="student model folder/hub ID (default SmolLM2)")
    bucket_edges: list[int] = Field(default_factory=lambda: list(DEFAULT_BUCKETS))
    answer_weight: float = Field(1.0, ge=0)
    context_weight: float = Field(0.0, ge=0, description="LIFT-style LM loss on the document tokens")
    system_prompt: str | None = Field(
        None, description="system turn for records that bring none (imported conversations keep their own)"
    )
    format: Literal["chat", "completion"] = Field(
        "chat",
        description="chat: the model's chat template; completion: plain text, turns joined by a blank line "
        "(base models without a template)",
    )
    chat_template: str | None = Field(
        None, description="a Jinja file replacing the tokenizer's chat template"
    )
    assistant_turns: Literal["all", "last"] = Field(
        "all", description="imported conversations: loss on every assistant turn, or on the last one only"
    )
    shard_tokens: int = Field(16_000_000, ge=1, description="target tokens per shard")
    shard_rows: int = Field(20_000, ge=1, description="maximum rows per shard")
    run_tokens: int = Field(32_000_000, ge=1, description="tokens buffered in memory before spilling")
    heldout_fraction: float = Field(
        0.0, ge=0.0, lt=1.0, description="share written to heldout/ for evaluation, never trained on"
    )
    heldout_by: Literal["document", "record"] = Field(
        "document", description="split whole evidence documents (no context leak) or single records"
    )

    @field_validator("bucket_edges")
    @classmethod
    def _sorted(cls, v: list[int]) -> list[int]:
        if not v or sorted(set(v)) != v or v[0] < 1:
            raise ValueError("bucket_edges must be strictly increasing positive integers")
        return v


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


class ChatSource(StageConfig):
    """Chat or instruction data to import as conversations (``lengthwise shard FILE``, ``sources: kind: chat``)."""

    path: str | None = Field(
        None, description="a .jsonl/.json/.parquet file, a folder of them, or a datasets folder"
    )
    dataset: str | None = Field(
        None, description="a hub dataset ID (needs the network) or a save_to_disk folder"
    )
    split: str = "train"
    format: Literal["auto", "messages", "sharegpt", "alpaca", "longalign"] = Field(
        "auto", description="row format; auto picks it from each row's keys"
    )
    system_prompt: str | None = Field(None, description="system turn for rows without their own")
    max_rows: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> ChatSource:
        if (self.path is None) == (self.dataset is None):
            raise ValueError("give exactly one of path or dataset")
        return self


def _problems(exc, model: type[BaseModel] | None = None) -> list[str]:
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
        raise ConfigError(_problems(exc, model_cls), source) from exc


def int_list(value: str | None, option: str) -> list[int]:
    """Parse ``"512,1024,2k"`` (``k`` = 1024); a bad item is a one-line usage error naming the option."""
    out = []
    for item in (value or "").split(","):
        item = item.strip().lower()
        if not item:
            continue
        try:
            out.append(int(float(item[:-1]) * 1024) if item.endswith("k") else int(item))
        except ValueError:
            _bad(option, value, f"comma-separated integers such as 512,1024,2k; {item!r} is not one")
    return out


def float_list(value: str | None, option: str) -> list[float]:
    """Parse ``"0,50,100"``; a bad item is a one-line usage error naming the option."""
    out = []
    for item in (value or "").split(","):
        if item.strip():
            try:
                out.append(float(item))
            except ValueError:
                _bad(option, value, f"comma-separated numbers such as 0,50,100; {item.strip()!r} is not one")
    return out


def choice_list(value: str | None, option: str, allowed: tuple[str, ...] | list[str]) -> list[str]:
    """Parse ``"a,b"`` where every item must be one of ``allowed``."""
    import difflib

    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    for item in items:
        if item not in allowed:
            close = difflib.get_close_matches(item, list(allowed), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            _bad(option, value, f"items from {', '.join(allowed)} ({hint}{item!r} is not one)")
    return items


def choice(value: str, option: str, allowed: tuple[str, ...] | list[str]) -> str:
    """One value that must be one of ``allowed``."""
    return choice_list(value, option, allowed)[0] if value else _bad(option, value, "a value is needed")


def _bad(option: str, value, fix: str):
    """Raise the CLI's usage error for ``option`` (one line, exit code 2)."""
    import typer

    got = "missing" if value is None else f"got {value!r}"
    raise typer.BadParameter(f"{got}; expected {fix}", param_hint=f"'{option}'")


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
            _bad("--set", item, "KEY.SUB=VALUE, e.g. --set lora.r=8")
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
            _bad("--set", item, f"a path through mappings; {parts[-2]!r} is a plain value")
    return out


def _child(node, part: str, nxt: str, item: str):
    if isinstance(node, list):
        return node[_index(node, part, item)]
    if not isinstance(node, dict):
        _bad("--set", item, f"a path through mappings; {part!r} is inside a plain value")
    if node.get(part) is None:
        node[part] = [] if nxt.isdigit() else {}
    if not isinstance(node[part], dict | list):
        _bad("--set", item, f"a path through mappings; {part!r} is a plain value")
    return node[part]


def _index(node: list, part: str, item: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        _bad("--set", item, f"a list index below {len(node)} at {part!r}")
    return int(part)


def validate_raw(model_cls: type[BaseModel], raw: dict, source: str):
    """Validate a mapping into ``model_cls``; every problem listed with a fix (and "did you mean")."""
    from pydantic import ValidationError

    from pipeline.errors import ConfigError

    try:
        return model_cls.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_with_cross_field(_problems(exc, model_cls), model_cls, raw), source) from exc


def _with_cross_field(problems: list[str], model_cls, raw) -> list[str]:
    """Add problems between fields (a model's ``raw_problems(raw)``, found even when fields are invalid).

    pydantic runs ``mode="after"`` checks only once every field is valid; listing them here reports
    them together with the field errors. Their after-validator lines are then dropped as duplicates.
    """
    check = getattr(model_cls, "raw_problems", None)
    cross = check(raw) if check and isinstance(raw, dict) else []
    if not cross:
        return problems
    return [p for p in problems if "Value error" not in p] + cross


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


def cron_expr(value: str, option: str) -> str:
    """A five-field cron expression (checked with croniter when it is installed)."""
    fields = value.split()
    if len(fields) != 5:
        _bad(option, value, 'five fields "minute hour day month weekday", e.g. "0 3 * * *"')
    try:
        from croniter import croniter
    except ImportError:
        return value
    if not croniter.is_valid(value):
        _bad(option, value, 'a valid cron expression, e.g. "0 3 * * *"')
    return value
