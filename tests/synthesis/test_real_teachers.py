"""Synthesis with real teachers: the packaged SmolLM2 in-process, and served by `transformers serve`.

SmolLM2-135M is a pipeline stand-in, not a good teacher: many of its replies are rightly
rejected. What these tests prove is that every kept record is grounded, that kept + rejected
adds up to what was planned, and that a rerun costs zero teacher calls.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from data_contracts import QARecord, RejectedRecord
from pipeline.config import SynthConfig, TeacherConfig
from pipeline.stages.load import iter_dataset
from pipeline.stages.synth import synthesize_corpus
from tests.servers import free_port

CFG = SynthConfig(
    tasks=["extraction", "general"],
    questions_per_doc=2,
    target_lengths=[1024, 2048],
    teacher_free_per_length=0,
    temperature=0.0,
    max_new_tokens=80,
    evidence_mode="anchored",
    # SmolLM2-135M is a pipeline stand-in, too weak to judge answers: the served run turns off the
    # checks that "auto" turns on for served teachers.
    verify_answers=False,
    closed_book_check=False,
)


def _check_output(out: Path, planned: int) -> list[QARecord]:
    kept = list(iter_dataset(out, QARecord))
    rejected = list(iter_dataset(out, RejectedRecord))
    assert len(kept) + len(rejected) == planned
    for rec in kept:
        assert rec.evidence
        for ev in rec.evidence:
            assert rec.context[ev.context_start : ev.context_end] == ev.quote
        assert rec.answer.strip() and rec.n_tokens <= rec.target_tokens
    return kept


def test_local_smollm2_teacher(small_chunks, tmp_path):
    tcfg = TeacherConfig(kind="local", batch_size=8)
    result = synthesize_corpus(
        [small_chunks], tmp_path / "qa", CFG, tcfg, cache_path=tmp_path / "cache.sqlite"
    )
    planned = sum(result.kept.values()) + sum(result.rejected.values())
    assert planned == 6 and result.calls >= 6
    kept = _check_output(tmp_path / "qa", planned)
    print("local SmolLM2 kept", result.kept, "rejected", result.rejected)
    assert kept, "SmolLM2 should get at least one grounded QA through the gates"
    assert all(r.teacher_backend == "local" for r in kept)
    again = synthesize_corpus(
        [small_chunks], tmp_path / "qa2", CFG, tcfg, cache_path=tmp_path / "cache.sqlite"
    )
    assert again.calls == 0 and again.cache_hits >= 6
    assert again.kept == result.kept and again.rejected == result.rejected


@pytest.fixture(scope="module")
def served_smollm2(smollm2_dir):
    port = free_port()
    exe = Path(sys.executable).with_name("transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [str(exe), "serve", str(smollm2_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            if proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise RuntimeError("transformers serve did not become healthy in 120 s")
        yield f"{url}/v1", str(smollm2_dir)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# One question per document through the server: each CPU generation there costs ~10-30 s, and the
# gates and cache are proven on the in-process teacher above; this test proves the served path.
SERVED_CFG = CFG.model_copy(update={"questions_per_doc": 1, "max_new_tokens": 64})


def test_served_smollm2_through_openai_client(served_smollm2, small_chunks, tmp_path):
    base_url, model = served_smollm2
    tcfg = TeacherConfig(kind="openai", base_url=base_url, model=model, concurrency=3, timeout_s=120)
    dry = synthesize_corpus(
        [small_chunks], tmp_path / "qa", SERVED_CFG, tcfg, dry_run=True, cache_path=tmp_path / "cache.sqlite"
    )
    assert dry.estimate.calls == 3 and dry.estimate.prompt_tokens > 500 and not (tmp_path / "qa").exists()
    result = synthesize_corpus(
        [small_chunks], tmp_path / "qa", SERVED_CFG, tcfg, cache_path=tmp_path / "cache.sqlite"
    )
    planned = sum(result.kept.values()) + sum(result.rejected.values())
    assert planned == 3 and result.calls >= 3
    kept = _check_output(tmp_path / "qa", planned)
    print("served SmolLM2 kept", result.kept, "rejected", result.rejected)
    # SmolLM2-135M is a pipeline stand-in: since the gates reject replies cut at the token limit and
    # unsupported answers (issue 17), it may keep none here. What this test proves is the real served
    # path: every reply reached the gates (no transport errors) and kept records are grounded.
    assert "teacher_error" not in result.rejected
    assert all(r.teacher_backend == "openai" for r in kept)
    again = synthesize_corpus(
        [small_chunks], tmp_path / "qa", SERVED_CFG, tcfg, cache_path=tmp_path / "cache.sqlite"
    )
    assert again.calls == 0 and again.cache_hits >= 3
