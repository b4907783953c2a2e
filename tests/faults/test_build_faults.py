"""Real `lengthwise build` processes under faults: SIGKILL at every stage, SIGTERM, a teacher outage,
a moved/copied build with a planted pickle. Every recovered build must equal the reference byte for byte."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import time
from pathlib import Path

import psutil
import pytest

from tests.faults.conftest import UMASK, data_files, kill_when


def _gone(pids: list[int], within: float = 15.0) -> list[int]:
    """The pids still alive (zombies count as gone) after waiting up to ``within`` seconds."""
    deadline = time.time() + within
    alive = pids
    while time.time() < deadline:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            break
        time.sleep(0.2)
    return alive


def test_reference_build_follows_the_umask(harness, reference):
    files = [p for p in reference.rglob("*") if p.is_file()]
    files.append(harness.prefect_home / "prefect.db")
    wrong = {
        str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in files if stat.S_IMODE(p.stat().st_mode) & UMASK
    }
    assert not wrong, f"files with permissions the umask {oct(UMASK)} forbids: {wrong}"
    shards = list((reference / "shards").rglob("*.arrow")) + [reference / "shards" / "manifest.json"]
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in shards} == {oct(0o666 & ~UMASK)}
    assert stat.S_IMODE((reference / "teacher-cache.sqlite").stat().st_mode) == 0o666 & ~UMASK


def test_sigkill_at_every_stage_then_rerun_equals_the_reference(harness, reference):
    out = harness.root / "killed"
    stages = {
        "chunk": lambda: any((out / "chunks").glob("*/manifest.json")),
        "synth": lambda: any((out / "qa").glob("*/manifest.json")),
        "shard": lambda: (out / "shards" / ".staging").exists(),
    }
    for stage, ready in stages.items():
        proc = harness.popen(out)
        children = kill_when(proc, ready)
        proc.wait()
        assert not (out / "shards" / "manifest.json").exists(), f"kill at {stage} came too late"
        assert children, "the build started no temporary Prefect server"
        assert not _gone(children), f"processes left running after SIGKILL at {stage}: the temporary server"
    stale = out / "chunks" / next((out / "chunks").iterdir()).name / ".chunks-00000.arrow.abc123.tmp"
    stale.write_bytes(b"\0" * 10_000_000)  # what a write killed mid-way leaves
    done = harness.build(out)  # same Prefect home: the killed synthesis run's slots must not block it
    assert done.returncode == 0, done.stderr[-4000:]
    assert not stale.exists(), "a stale temporary file survived the rerun"
    assert data_files(out) == data_files(reference)


def test_sigterm_during_synthesis_stops_the_build_promptly(harness, reference):
    out = harness.root / "terminated"
    before = harness.teacher.requests()
    proc = harness.popen(out)
    children = kill_when(proc, lambda: harness.teacher.requests() > before, sig=signal.SIGTERM)
    t0 = time.time()
    rc = proc.wait(timeout=60)
    assert rc != 0 and time.time() - t0 < 30, f"SIGTERM took {time.time() - t0:.0f} s (rc {rc})"
    assert not _gone(children)


def test_teacher_down_fails_the_build_then_back_completes_it(harness, reference):
    out = harness.root / "outage"
    harness.teacher.stop()
    try:
        down = harness.build(out)
    finally:
        harness.teacher.start()
    assert down.returncode != 0
    errors = [line for line in down.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, down.stderr[-4000:]
    assert harness.teacher.url in errors[0] and "call(s) failed in 3 batch(es)" in errors[0], errors[0]
    assert len(list((out / "chunks").glob("*/manifest.json"))) == 3, "finished chunk batches were lost"
    assert not list((out / "qa").glob("*/manifest.json")), "a batch with failed teacher calls was marked done"
    before = harness.teacher.requests()
    back = harness.build(out)
    assert back.returncode == 0, back.stderr[-4000:]
    assert harness.teacher.requests() > before
    assert data_files(out) == data_files(reference)


def _plant_pickles(folders: list[Path], names: list[str], marker: Path) -> None:
    """Prefect result records whose payload, once unpickled, creates ``marker``."""
    from prefect._internal.result_records import ResultRecord, ResultRecordMetadata
    from prefect.serializers import PickleSerializer

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            meta = ResultRecordMetadata(serializer=PickleSerializer(), storage_key=str(folder / name))
            (folder / name).write_bytes(ResultRecord(result=Evil(), metadata=meta).serialize())


def _old_cache_keys(out: Path) -> list[str]:
    """The names the pre-fix flow gave its cached chunk results (content_hash of batch name + config)."""
    import yaml

    from data_contracts import content_hash
    from pipeline.config import ChunkerConfig

    cfg = ChunkerConfig.model_validate(yaml.safe_load(out.with_suffix(".yaml").read_text())["chunker"])
    batches = sorted(p.name for p in (out / "docs").glob("batch-*.arrow"))
    return [content_hash("chunk", b, cfg.model_dump(mode="json"), length=32) for b in batches]


def test_moved_copy_with_planted_pickles_resumes_from_its_own_files(harness, reference):
    moved = harness.root / "moved"
    shutil.copytree(reference, harness.root / "copy")
    shutil.move(harness.root / "copy", moved)  # the folder it was copied to no longer exists
    shutil.copy(reference.with_suffix(".yaml"), moved.with_suffix(".yaml"))
    marker = harness.root / "PWNED"
    names = [*_old_cache_keys(moved), "planted"]
    _plant_pickles([moved / ".prefect-results", harness.prefect_home / "storage"], names, marker)
    redo = sorted((moved / "qa").iterdir())[0]
    shutil.rmtree(redo)  # this batch must be redone here, not found in the reference folder
    ref_before = {p: p.stat().st_mtime_ns for p in reference.rglob("*")}
    done = harness.build(moved)
    assert not marker.exists(), "a planted pickle ran"
    assert done.returncode == 0, done.stderr[-4000:]
    assert (redo / "manifest.json").exists()
    assert data_files(moved) == data_files(reference)
    assert {p: p.stat().st_mtime_ns for p in reference.rglob("*")} == ref_before, "the original was touched"


@pytest.fixture(autouse=True)
def _tidy_prefect_storage(harness):
    yield
    shutil.rmtree(harness.prefect_home / "storage", ignore_errors=True)
