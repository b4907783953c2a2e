"""Prefect tasks: each one is a library stage function, with caching keyed on content hashes."""

from __future__ import annotations

from prefect import task
from prefect.concurrency.sync import concurrency

from data_contracts import content_hash
from pipeline.stages import build as stages
from trainer.evaluation.api import evaluate
from trainer.launch import train

TEACHER_LIMIT = "lengthwise-teacher"


def _key(*parts) -> str:
    return content_hash(*parts, length=32)


def _chunk_key(ctx, p) -> str:
    return _key("chunk", p["doc_shard"].rsplit("/", 1)[-1], p["cfg"].model_dump(mode="json"))


def _synth_key(ctx, p) -> str:
    return _key(
        "synth",
        stages.folder_hash(p["chunk_dir"]),
        p["synth"].model_dump(mode="json"),
        p["teacher"].model_dump(mode="json"),
    )


ingest = task(stages.ingest, name="ingest", retries=1)
chunk = task(stages.chunk_batch, name="chunk", cache_key_fn=_chunk_key, persist_result=True)
shard = task(stages.shard_all, name="shard")
counts = task(stages.build_counts, name="count")


@task(name="synthesize", cache_key_fn=_synth_key, persist_result=True, retries=1, retry_delay_seconds=5)
def synthesize(chunk_dir: str, out_root: str, synth, teacher, cache_path: str | None = None) -> str:
    """Synthesize one batch while holding a slot of the global teacher concurrency limit."""
    with concurrency(TEACHER_LIMIT, occupy=1, strict=True):
        return stages.synthesize_batch(chunk_dir, out_root, synth, teacher, cache_path)


train_task = task(train, name="train")  # in-process or a torchrun job (train.launcher)
evaluate_task = task(evaluate, name="evaluate")
