"""The ``build_dataset`` flow: sources -> chunk (mapped) -> synthesize (mapped, rate limited) -> shards.

With ``lm`` set, the document batches are also cut into LM records (mapped), which the shard step mixes in.
"""
# No `from __future__ import annotations` here: Prefect builds the parameter schema from real types.

import contextlib
import os
import threading
from pathlib import Path

from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.exceptions import TerminationSignal
from prefect.runtime import flow_run

from flows import tasks
from flows.runners import task_runner
from pipeline.errors import TeacherUnavailable
from pipeline.stages.build import BuildConfig, chat_sources, skipped_inputs

STOP_GRACE_S = 15.0  # after SIGTERM, in-flight teacher calls get this long before the process exits


@contextlib.contextmanager
def _run_teacher_limit(limit: int):
    """A concurrency limit that lives as long as this flow run.

    Its name carries the flow run id: slots held by a killed run stay with that run's limit and
    never block a rerun (a limit shared across runs would keep a dead run's slots forever when
    the server forgets their leases, e.g. a temporary server).
    """
    name = f"{tasks.TEACHER_LIMIT}-{flow_run.id}"
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, limit)
    try:
        yield name
    finally:
        with contextlib.suppress(Exception), get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(name)


def _exit_after_grace() -> None:
    """SIGTERM: stop waiting tasks now and the process after a grace period (all writes are atomic)."""
    tasks.STOP.set()
    timer = threading.Timer(STOP_GRACE_S, os._exit, args=(143,))
    timer.daemon = True
    timer.start()


def _qa_results(futures) -> list[str]:
    """Every batch's QA folder; teacher outages of several batches become one error with the total."""
    done, outages = [], []
    for f in futures:
        try:
            done.append(f.result())
        except TeacherUnavailable as exc:
            outages.append(exc)
    if outages:
        raise TeacherUnavailable.combine(outages)
    return done


@flow(name="build-dataset", log_prints=False)
def build_dataset(cfg: BuildConfig) -> str:
    """Build tokenized, length-sorted shards from the configured sources; returns the shard folder."""
    log = get_run_logger()
    out = str(Path(cfg.output_dir).resolve())
    try:
        with _run_teacher_limit(cfg.teacher_concurrency) as limit:
            for stale in tasks.sweep(out):
                log.info("removed %s (left by a killed write)", stale)
            batches = tasks.ingest(cfg.sources, out, cfg.docs_per_batch)
            log.info("%d document batches", len(batches))
            for item in skipped_inputs(out):
                log.warning("skipped %s: %s", item["source"], item["reason"])
            chunked = tasks.chunk.map(batches, unmapped(out), unmapped(cfg.chunker))
            qa = tasks.synthesize.map(
                chunked,
                unmapped(out),
                unmapped(cfg.synth),
                unmapped(cfg.teacher),
                unmapped(str(Path(out) / "teacher-cache.sqlite")),
                unmapped(limit),
            )
            lm = (
                tasks.lm.map(
                    batches,
                    unmapped(out),
                    unmapped(cfg.lm),
                    unmapped(cfg.lm_lengths()),
                    unmapped(cfg.shard.tokenizer),
                )
                if cfg.lm
                else []
            )
            shards = tasks.shard(
                _qa_results(qa),
                out,
                cfg.shard,
                chat_sources(cfg.sources),
                [f.result() for f in lm],
                cfg.lm,
                cfg.replay,
            )
    except TerminationSignal:
        _exit_after_grace()
        raise
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
