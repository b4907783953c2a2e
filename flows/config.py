"""Run configurations (pydantic, loadable from YAML). Data only: no orchestration lives here.

A run YAML names the base model once (``model:`` at the top); every stage that tokenizes or loads
weights (chunk budgets, synthesis lengths, shard tokenization, training, evaluation) uses it unless
its own section names another. ``train``, ``eval`` and ``build`` each read their own section.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.configfile import apply_base_model, apply_overrides, load_raw, validate_raw
from pipeline.stages.build import BuildConfig
from pipeline.stages.split import HELDOUT_DIR
from trainer.config import TrainConfig
from trainer.evaluation.api import EvalConfig

SECTIONS = ("build", "train", "eval")


class RunConfig(BaseModel):
    """End to end: build -> train -> evaluate. Each part is skipped when its outputs exist."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(
        None,
        description="the base model, named once: a hub ID or a local folder. Chunking budgets, synthesis "
        "lengths, shard tokenization, training and evaluation use its tokenizer, chat template and weights "
        "unless their own section names another (default: packaged SmolLM2)",
    )
    build: BuildConfig | None = Field(
        None, description="sources -> chunks -> QA -> shards (`lengthwise build`)"
    )
    train: TrainConfig | None = Field(None, description="the LoRA curriculum (`lengthwise train`)")
    eval: EvalConfig | None = Field(
        None, description="probes, perplexity and QA, base vs adapters (`lengthwise eval`)"
    )
    skip_train: bool = Field(False, description="run: build and evaluate only")
    skip_eval: bool = Field(False, description="run: build and train only")

    @classmethod
    def raw_problems(cls, raw: dict) -> list[str]:
        """Cross-field problems of the raw train section, reported with the field errors."""
        train = raw.get("train")
        return [f"train.{p}" for p in TrainConfig.raw_problems(train)] if isinstance(train, dict) else []

    @model_validator(mode="before")
    @classmethod
    def _base_model(cls, raw):
        return apply_base_model(raw) if isinstance(raw, dict) else raw


def is_run_yaml(raw: dict) -> bool:
    """True when a YAML mapping is a run config (sections) rather than one stage's config."""
    return any(k in raw for k in SECTIONS)


def load_run_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """A run YAML with ``--set`` overrides; every problem is listed at once."""
    from pipeline.errors import ConfigError

    cfg = validate_raw(RunConfig, apply_overrides(load_raw(path), overrides), str(path))
    missing = [
        f"{name}: a run needs a {name} section (see docs/config.md)"
        for name in ("build", "train")
        if getattr(cfg, name) is None
    ]
    if missing:
        raise ConfigError(missing, str(path))
    return cfg


def _run_or_section(path, section: str, model_cls, overrides):
    raw = load_raw(path)
    if is_run_yaml(raw):
        return validate_raw(RunConfig, apply_overrides(raw, overrides, prefix=section), str(path)), True
    return validate_raw(model_cls, apply_overrides(raw, overrides), str(path)), False


def _section(path, section: str, model_cls, overrides, example: str):
    """A ``section`` YAML, or that section of a run YAML (returned with the run config, else None)."""
    from pipeline.errors import ConfigError

    cfg, is_run = _run_or_section(path, section, model_cls, overrides)
    if not is_run:
        return cfg, None
    part = getattr(cfg, section)
    if part is None:
        raise ConfigError([f"{section}: this run config has no {section} section (add {example})"], str(path))
    return part, cfg


def load_build_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> BuildConfig:
    """A build YAML, or a run YAML's ``build`` section (with the run's ``model``)."""
    return _section(path, "build", BuildConfig, overrides, "build: {sources: [...]}")[0]


def load_train_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """A training YAML, or a run YAML's ``train`` section (data defaults to the build's shards)."""
    train, run = _section(path, "train", TrainConfig, overrides, "train: {stages: [...]}")
    if run is not None and not train.data and run.build is not None:
        train = train.model_copy(update={"data": str(Path(run.build.output_dir) / "shards")})
    return train


def load_eval_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> EvalConfig:
    """An eval YAML, or a run YAML's ``eval`` section with the run's model, adapters and held-out data."""
    cfg, run = _section(path, "eval", EvalConfig, overrides, "eval: {haystack: [...]}")
    return cfg if run is None else run_eval_config(run)


def run_eval_config(cfg: RunConfig, adapter: str | None = None, shards: str | None = None) -> EvalConfig:
    """The eval section completed from the rest of the run: model, the trained adapters, held-out data."""
    ev = cfg.eval
    assert ev is not None
    train_out = Path(cfg.train.output_dir if cfg.train else "out/train")
    adapter = adapter or (
        str(train_out / "adapter") if (train_out / "adapter" / "adapter_model.safetensors").exists() else None
    )
    stages = sorted(str(p) for p in (Path(adapter).parent / "stages").glob("stage-*")) if adapter else []
    if shards is None and cfg.build is not None:
        shards = str(Path(cfg.build.output_dir) / "shards")
    held = Path(shards) / HELDOUT_DIR if shards else None
    update = {
        "adapters": ev.adapters or stages or ([adapter] if adapter else []),
        "model": ev.model or (cfg.train.model if cfg.train else cfg.model),
        "data": ev.data or (str(held) if held and (held / "manifest.json").exists() else None),
    }
    return ev.model_copy(update=update)


__all__ = [
    "BuildConfig",
    "EvalConfig",
    "RunConfig",
    "TrainConfig",
    "load_build_config",
    "load_eval_config",
    "load_run_config",
    "load_train_config",
    "run_eval_config",
]
