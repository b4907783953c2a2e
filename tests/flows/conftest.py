"""One Prefect test harness per pytest run (about 10 s), shared by every flow test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def prefect_backend():
    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        with temporary_settings(updates={"flows.heartbeat_frequency": None}):
            yield


@pytest.fixture(scope="session")
def build_sources(tmp_path_factory, sample_corpus) -> Path:
    """Three small real documents plus unreadable files that must be skipped, not fatal."""
    src = tmp_path_factory.mktemp("sources")
    for name in ("license-MPL-2.0.txt", "license-Apache-2.0.txt", "debian-policy-ch-relationships.rst"):
        shutil.copy(sample_corpus / name, src / name)
    (src / "broken.txt").write_bytes(b"\xff\xfe\x00binary\x00")
    (src / "empty.md").write_text("")
    return src


def build_cfg(src: Path, out: Path, **runner) -> dict:
    return {
        "name": "test-build",
        "sources": [{"path": str(src)}],
        "output_dir": str(out),
        "docs_per_batch": 1,
        "chunker": {"method": "recursive", "max_tokens": 256},
        "synth": {"teacher_free_per_length": 1, "target_lengths": [512, 1024], "questions_per_doc": 0},
        "teacher": {"kind": "none"},
        "shard": {"bucket_edges": [512, 1024]},
        "runner": runner or {"kind": "threads", "max_workers": 2},
    }
