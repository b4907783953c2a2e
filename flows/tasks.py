"""Prefect tasks: each one is a library stage function.

No task result is persisted or read back by Prefect. Prefect's result store picks the
deserializer named inside each stored file (pickle included) and its JSON decoder imports classes
named in the file, so a results folder inside a writable output folder would run whatever is
planted there. Reruns are resumed by the stage functions themselves instead: a batch folder is
done when its manifest and content-keyed input marker match (``pipeline.stages.build``), which
lives inside the output folder, so a moved build resumes and a copied build never reads the
original.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency

from pipeline.errors import InputError
from pipeline.stages import build as stages
from trainer.evaluation.api import evaluate
from trainer.launch import train

TEACHER_LIMIT = "lengthwise-teacher"
SLOT_POLL_S = 2.0  # how often a waiting batch re-asks for a slot (and notices a stop)
SLOT_LOG_EVERY_S = 30.0
STOP = threading.Event()  # set when the flow is terminated: waiting batches give up at once

_NO_RESULTS = {"persist_result": False, "cache_policy": NO_CACHE}


class _SlotPollFilter(logging.Filter):
    """Prefect logs every refused slot request as an ERROR; here a refusal is a poll, not a failure.

    The refusal still reaches the caller as an exception, so nothing is hidden from the build.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not ("ConcurrencySlotAcquisition" in msg and "failed to process item" in msg)


logging.getLogger("prefect._internal.concurrency").addFilter(_SlotPollFilter())


class Stopped(RuntimeError):
    """The flow was terminated while this task waited."""


def _locked(exc: BaseException) -> bool:
    """True when Prefect refused a slot because the limit is full (HTTP 423), not for other errors."""
    cause = exc.__cause__
    return getattr(getattr(cause, "response", None), "status_code", None) == 423


@contextlib.contextmanager
def teacher_slot(limit: str, batch: str, log: logging.Logger | logging.LoggerAdapter):
    """Hold one slot of this run's teacher limit; the wait is logged and ends on a stop.

    The limit belongs to one flow run (see ``flows.build``): slots of a killed run are never
    waited for by the next one. Each poll is one request that is never cancelled mid-flight:
    Prefect's own ``timeout_seconds`` cancels the request, and when the server had already granted
    the slot it leaks. The private server does not run Prefect's lease reaper, so a leaked slot of
    a one-slot limit blocked the build for good (seen on a loaded CI machine).
    """
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError

    waited, logged = 0.0, 0.0
    with contextlib.ExitStack() as stack:
        while True:
            if STOP.is_set():
                raise Stopped(f"{batch}: build terminated while waiting for a teacher slot")
            try:
                stack.enter_context(
                    concurrency(
                        limit, occupy=1, max_retries=0, lease_duration=60, strict=True,
                        raise_on_lease_renewal_failure=False,  # a missed renewal must not kill the batch
                    )
                )  # fmt: skip
                break
            except ConcurrencySlotAcquisitionError as exc:
                if not _locked(exc):
                    raise
            STOP.wait(SLOT_POLL_S)
            waited += SLOT_POLL_S
            if waited - logged >= SLOT_LOG_EVERY_S or not logged:
                log.info("%s: waiting %.0f s for a teacher slot (%s)", batch, waited, limit)
                logged = waited
        if waited:
            log.info("%s: got a teacher slot after %.0f s", batch, waited)
        yield


def _transient(task, task_run, state) -> bool:
    """Retry reading sources after a transient failure (a hub hiccup), never after a config mistake."""
    try:
        state.result()
    except InputError:
        return False
    except Exception:  # noqa: BLE001  (anything else may pass on a second try)
        return True
    return True


ingest = task(stages.ingest, name="ingest", retries=1, retry_condition_fn=_transient, **_NO_RESULTS)
sweep = task(stages.remove_stale_tmp, name="sweep", **_NO_RESULTS)
chunk = task(stages.chunk_batch, name="chunk", **_NO_RESULTS)
lm = task(stages.lm_batch, name="lm", **_NO_RESULTS)
shard = task(stages.shard_all, name="shard", **_NO_RESULTS)
counts = task(stages.build_counts, name="count", **_NO_RESULTS)


@task(name="synthesize", retries=1, retry_delay_seconds=5, **_NO_RESULTS)
def synthesize(chunk_dir: str, out_root: str, synth, teacher, cache_path: str, limit: str) -> str:
    """Synthesize one batch while holding a slot of the run's teacher concurrency limit."""
    with teacher_slot(limit, chunk_dir.rsplit("/", 1)[-1], get_run_logger()):
        return stages.synthesize_batch(chunk_dir, out_root, synth, teacher, cache_path)


train_task = task(train, name="train", **_NO_RESULTS)  # in-process or a torchrun job (train.launcher)
evaluate_task = task(evaluate, name="evaluate", **_NO_RESULTS)
