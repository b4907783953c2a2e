"""The teacher concurrency slot: the wait is logged, a stop ends it, and limits are per flow run."""

from __future__ import annotations

import logging
import signal
import threading
import time

import pytest

pytestmark = pytest.mark.usefixtures("prefect_backend")


def test_waiting_for_a_slot_is_logged_and_ends_on_stop(monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency

    from flows import tasks

    monkeypatch.setattr(tasks, "SLOT_POLL_S", 0.5)
    name = "test-slot-wait"
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    log = logging.getLogger("test-teacher-slot")
    log.setLevel(logging.INFO)
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    log.addHandler(handler)
    errors: list[BaseException] = []

    def waiter():
        try:
            with tasks.teacher_slot(name, "batch-x", log):
                errors.append(AssertionError("got a slot that another holder has"))
        except tasks.Stopped as exc:
            errors.append(exc)

    with concurrency(name, occupy=1, strict=True):
        thread = threading.Thread(target=waiter)
        thread.start()
        deadline = time.time() + 30
        while not seen and time.time() < deadline:
            time.sleep(0.1)
        assert seen and "batch-x: waiting" in seen[0] and name in seen[0], seen
        tasks.STOP.set()
        try:
            thread.join(timeout=10)
        finally:
            tasks.STOP.clear()
    assert not thread.is_alive() and len(errors) == 1 and isinstance(errors[0], tasks.Stopped)


def test_each_build_run_gets_its_own_limit_and_removes_it(build_sources, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.concurrency._sync import acquire_concurrency_slots_with_lease

    from flows.build import build_dataset
    from pipeline.stages.build import BuildConfig
    from tests.flows.conftest import build_cfg

    cfg = BuildConfig.model_validate(build_cfg(build_sources, tmp_path / "b"))
    with get_client(sync_client=True) as client:  # what a killed run leaves: every slot taken, never freed
        client.upsert_global_concurrency_limit_by_name("lengthwise-teacher", cfg.teacher_concurrency)
    acquire_concurrency_slots_with_lease(["lengthwise-teacher"], cfg.teacher_concurrency, lease_duration=3600)
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("build blocked on slots")))
    signal.alarm(240)
    try:
        state = build_dataset(cfg, return_state=True)
    finally:
        signal.alarm(0)
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        names = {lim.name for lim in client.read_global_concurrency_limits(limit=200)}
    assert not any(n.startswith("lengthwise-teacher-") for n in names), names


def test_a_slow_grant_is_held_and_released_not_leaked(monkeypatch):
    """A grant that arrives after the poll interval is used and released, never abandoned.

    Prefect's ``timeout_seconds`` cancelled the request after the server had granted the slot:
    the slot leaked, and the private server (no lease reaper) kept it taken for good. On a loaded
    CI machine a one-slot build then waited ten minutes for its own slot.
    """
    import asyncio

    from prefect.client.orchestration import PrefectClient, get_client

    from flows import tasks

    monkeypatch.setattr(tasks, "SLOT_POLL_S", 0.5)
    real = PrefectClient.increment_concurrency_slots_with_lease

    async def slow_reply(self, *args, **kwargs):  # the server commits, the reply comes late
        response = await real(self, *args, **kwargs)
        await asyncio.sleep(3 * tasks.SLOT_POLL_S)
        return response

    monkeypatch.setattr(PrefectClient, "increment_concurrency_slots_with_lease", slow_reply)
    name = "test-slot-slow-grant"
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    log = logging.getLogger("test-teacher-slot")
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(RuntimeError("a leaked slot blocks")))
    signal.alarm(60)
    try:
        for _ in range(2):  # a leaked first slot would block the second for good
            with tasks.teacher_slot(name, "batch-slow", log):
                pass
    finally:
        signal.alarm(0)
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(name).active_slots == 0
