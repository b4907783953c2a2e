"""The ``build_dataset`` flow: sources -> chunk (mapped) -> synthesize (mapped, rate limited) -> shards."""
# No `from __future__ import annotations` here: Prefect builds the parameter schema from real types.

from pathlib import Path

from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client

from flows import tasks
from flows.runners import task_runner
from pipeline.stages.build import BuildConfig, chat_sources, skipped_inputs


def _ensure_teacher_limit(limit: int) -> None:
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(tasks.TEACHER_LIMIT, limit)


@flow(name="build-dataset", log_prints=False)
def build_dataset(cfg: BuildConfig) -> str:
    """Build tokenized, length-sorted shards from the configured sources; returns the shard folder."""
    log = get_run_logger()
    out = str(Path(cfg.output_dir).resolve())
    results = Path(out) / ".prefect-results"  # a Path, not a str: a str names a storage block
    _ensure_teacher_limit(cfg.teacher_concurrency)
    batches = tasks.ingest(cfg.sources, out, cfg.docs_per_batch)
    log.info("%d document batches", len(batches))
    for item in skipped_inputs(out):
        log.warning("skipped %s: %s", item["source"], item["reason"])
    chunked = tasks.chunk.with_options(result_storage=results).map(
        batches, unmapped(out), unmapped(cfg.chunker)
    )
    qa = tasks.synthesize.with_options(result_storage=results).map(
        chunked,
        unmapped(out),
        unmapped(cfg.synth),
        unmapped(cfg.teacher),
        unmapped(str(Path(out) / "teacher-cache.sqlite")),
    )
    shards = tasks.shard(qa.result(), out, cfg.shard, chat_sources(cfg.sources))
    rows = tasks.counts(out)
    create_table_artifact(key="build-counts", table=rows, description=f"counts per stage for {cfg.name}")
    create_markdown_artifact(
        key="dataset-card",
        markdown=(Path(shards) / "README.md").read_text(),
        description=f"dataset card of {cfg.name}",
    )
    log.info("shards in %s", shards)
    return shards


def build_with_runner(cfg: BuildConfig) -> str:
    """Run ``build_dataset`` with the task runner the config selects."""
    return build_dataset.with_options(task_runner=task_runner(cfg.runner))(cfg)
