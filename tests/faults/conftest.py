"""Fault-injection harness: real `lengthwise build` processes, a real teacher server process, one clean reference.

Every build here runs the CLI in a subprocess under umask 027 with one shared Prefect home, against
``teacher_server.py`` (an OpenAI-compatible HTTP server in its own process that a test can stop and
start again on the same port). The reference build is made once per session and shared.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from tests.servers import free_port

HERE = Path(__file__).resolve().parent
LW = [sys.executable, "-m", "pipeline"]
UMASK = 0o027
BUILD_TIMEOUT = 600  # a bound on one build even on a loaded 2-core machine (~1 min when idle)


@dataclass
class Teacher:
    """The teacher server process; ``stop``/``start`` keep its port, so configs stay identical."""

    port: int
    log: Path
    sleep: float = 0.05
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def requests(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0

    def start(self) -> None:
        cmd = [sys.executable, str(HERE / "teacher_server.py"), "--port", str(self.port)]
        self.proc = subprocess.Popen([*cmd, "--sleep", str(self.sleep), "--log", str(self.log)])
        for _ in range(200):
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("teacher server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@dataclass
class Harness:
    """What the fault tests share: sources, teacher, Prefect home, the reference build."""

    root: Path
    sources: Path
    teacher: Teacher
    prefect_home: Path
    reference: Path | None = None

    def config(self, out: Path) -> Path:
        cfg = {
            "name": "fault-build",
            "sources": [{"path": str(self.sources)}],
            "output_dir": str(out),
            "docs_per_batch": 1,
            "chunker": {"method": "recursive", "max_tokens": 256},
            "synth": {
                "tasks": ["general", "extraction"],
                "questions_per_doc": 2,
                "evidence_mode": "anchored",
                "teacher_free_per_length": 1,
                "target_lengths": [512, 1024],
            },
            "teacher": {
                "kind": "openai",
                "base_url": self.teacher.url,
                "model": "fault-teacher",
                "max_retries": 1,
                "timeout_s": 20,
                "concurrency": 2,
            },
            "shard": {"bucket_edges": [512, 1024]},
            "teacher_concurrency": 1,
        }
        path = out.parent / f"{out.name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.prefect_home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
            HF_HUB_OFFLINE="1",
        )
        return env

    def popen(self, out: Path, **kw) -> subprocess.Popen:
        return subprocess.Popen(
            [*LW, "build", str(self.config(out))],
            env=self.env(),
            preexec_fn=lambda: os.umask(UMASK),  # noqa: PLW1509
            **kw,
        )

    def build(self, out: Path) -> subprocess.CompletedProcess:
        proc = self.popen(out, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stdout, stderr = proc.communicate(timeout=BUILD_TIMEOUT)
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def data_files(out: Path) -> dict[str, bytes]:
    """Every file of a build that users consume, by path relative to the build (bytes)."""
    keep = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if path.is_file() and rel.parts[0] in {"docs", "chunks", "qa", "shards"}:
            keep[str(rel)] = path.read_bytes()
    return keep


def kill_when(proc: subprocess.Popen, ready, timeout: float = BUILD_TIMEOUT, sig=signal.SIGKILL) -> list[int]:
    """Send ``sig`` as soon as ``ready()`` holds; return the pids of the build's child processes."""
    import psutil

    deadline = time.time() + timeout
    children: set[int] = set()
    while proc.poll() is None and not ready():
        assert time.time() < deadline, "the fault point was not reached in time"
        children |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
        time.sleep(0.02)
    assert proc.poll() is None, "the build finished before the fault could be injected"
    os.kill(proc.pid, sig)
    return sorted(children)


@pytest.fixture(scope="session")
def harness(tmp_path_factory, sample_corpus):
    root = tmp_path_factory.mktemp("faults")
    src = root / "sources"
    src.mkdir()
    for name in ("license-MPL-2.0.txt", "license-Apache-2.0.txt", "debian-policy-ch-relationships.rst"):
        shutil.copy(sample_corpus / name, src / name)
    teacher = Teacher(free_port(), root / "teacher-requests.log")
    teacher.start()
    h = Harness(root, src, teacher, Path(tempfile.mkdtemp(prefix="lw-faults-prefect-")))
    try:
        yield h
    finally:
        teacher.stop()


@pytest.fixture(scope="session")
def reference(harness) -> Path:
    """One uninterrupted build, shared by every comparison."""
    out = harness.root / "reference"
    done = harness.build(out)
    assert done.returncode == 0, done.stderr[-4000:]
    # Queued run logs are sent before the private server stops (else exit hung a minute retrying).
    assert "Error logging to API" not in done.stderr, done.stderr[-2000:]
    harness.reference = out
    return out


from tests.trainer.conftest import tiny_model, tiny_shards  # noqa: E402, F401  (shared fixtures)
