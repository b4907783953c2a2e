"""The ``run`` flow: build -> train (progressive stages) -> evaluate, each skipped when done."""
# No `from __future__ import annotations` here: Prefect builds the parameter schema from real types.

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows import tasks
from flows.build import build_dataset
from flows.config import RunConfig, run_eval_config
from flows.runners import task_runner


@flow(name="train")
def train_flow(cfg: RunConfig, shards: str) -> str:
    """Train on the built shards unless the final adapter is already there."""
    train_cfg = cfg.train.model_copy(update={"data": cfg.train.data or shards})
    adapter = Path(train_cfg.output_dir) / "adapter"
    if not (adapter / "adapter_model.safetensors").exists():
        tasks.train_task(train_cfg)
    else:
        get_run_logger().info("skipping training: %s exists", adapter)
    return str(adapter)


@flow(name="evaluate")
def eval_flow(cfg: RunConfig, adapter: str | None, shards: str) -> str:
    """Evaluate base vs adapter (and the per-stage adapters) unless the report exists."""
    ev = run_eval_config(cfg, adapter, shards)  # the same completion `lengthwise eval RUN.yaml` uses
    report = Path(ev.out) / "report.md"
    if not report.exists():
        tasks.evaluate_task(ev)
    create_markdown_artifact(
        key="eval-report", markdown=report.read_text(), description="long-context evaluation"
    )
    return str(report)


@flow(name="run")
def run_all(cfg: RunConfig) -> dict:
    """Everything end to end; returns the output paths."""
    shards = build_dataset.with_options(task_runner=task_runner(cfg.build.runner))(cfg.build)
    adapter = None if cfg.skip_train else train_flow(cfg, shards)
    report = None if cfg.skip_eval or cfg.eval is None else eval_flow(cfg, adapter, shards)
    return {"shards": shards, "adapter": adapter, "report": report}
