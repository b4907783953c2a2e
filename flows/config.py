"""Flow configurations (pydantic, loadable from YAML). Data only: no logic lives here."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from pipeline.config import load_yaml
from pipeline.stages.build import BuildConfig
from trainer.config import TrainConfig
from trainer.evaluation.api import EvalConfig


class RunConfig(BaseModel):
    """End to end: build -> train -> evaluate. Each part is skipped when its outputs exist."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    build: BuildConfig
    train: TrainConfig
    eval: EvalConfig | None = None
    skip_train: bool = False
    skip_eval: bool = False


def load_build_config(path: str | Path) -> BuildConfig:
    """A build YAML (a run YAML's ``build`` section also works)."""
    import yaml

    raw = yaml.safe_load(Path(path).read_text()) or {}
    if isinstance(raw, dict) and "build" in raw:
        return load_run_config(path).build
    return load_yaml(path, BuildConfig)


def load_run_config(path: str | Path) -> RunConfig:
    """A run YAML; every problem is listed at once."""
    return load_yaml(path, RunConfig)


__all__ = [
    "BuildConfig",
    "EvalConfig",
    "RunConfig",
    "TrainConfig",
    "load_build_config",
    "load_run_config",
    "Field",
]
