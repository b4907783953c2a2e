"""``lengthwise chunk`` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

from pipeline.validate import validate_path


def test_chunk_cli_writes_valid_shards_and_summary(tmp_path, sample_corpus):
    src = tmp_path / "docs"
    src.mkdir()
    for name in ("nodejs-url.md", "license-GPL-3.txt", "python-tutorial-classes.rst"):
        (src / name).write_text((sample_corpus / name).read_text())
    (src / "broken.txt").write_bytes(b"\xff\xfe\x00\x00binary")
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "chunk",
            str(src),
            "--max-tokens",
            "300",
            "--out",
            str(out),
            "--format",
            "jsonl",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "violations = 0" in proc.stdout and "3 docs" in proc.stdout
    assert "skipped" in proc.stderr and "broken.txt" in proc.stderr
    report = validate_path(out)
    assert report.manifest.kind == "chunks"
    lines = (out / "chunks.jsonl").read_text().splitlines()
    assert len(lines) == sum(s.rows for s in report.shards if s.contract == "chunk")
    assert all(json.loads(line)["token_count"] <= 300 for line in lines)


def test_chunk_cli_bad_option_is_one_clear_error(tmp_path, sample_corpus):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "chunk",
            str(sample_corpus),
            "--method",
            "magic",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2  # a usage error
    assert "method" in proc.stderr and "Traceback" not in proc.stderr
