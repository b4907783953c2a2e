"""The ``lengthwise`` CLI as a user runs it: a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import data_contracts as dc
from data_contracts.io import write_records

LW = [sys.executable, "-m", "pipeline"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*LW, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_version():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("lengthwise ")


def test_validate_good_shard_prints_summary(tmp_path):
    doc = dc.SourceDocument.from_text("some text", source="x.txt", format="txt")
    path = tmp_path / "docs.arrow"
    write_records(path, [doc], dc.SourceDocument)
    out = run("validate", str(path))
    assert out.returncode == 0, out.stderr
    assert "source_document v1, 1 rows" in out.stdout


def test_validate_corrupt_shard_names_file_and_fix(tmp_path):
    path = tmp_path / "bad.arrow"
    path.write_bytes(b"not arrow at all")
    out = run("validate", str(path))
    assert out.returncode == 1
    assert str(path) in out.stderr and "rerun" in out.stderr
    assert "Traceback" not in out.stderr


def test_assets_command_is_idempotent(smollm2_dir):
    out = run("assets")
    assert out.returncode == 0, out.stderr
    assert str(smollm2_dir) in out.stdout and "converting" not in out.stdout
