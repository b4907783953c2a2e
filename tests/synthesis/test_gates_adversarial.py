"""The gates against a real adversarial OpenAI-compatible server; placement and teacher hygiene."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import pytest

from data_contracts import QARecord, RejectedRecord, RejectReason, TaskType
from pipeline.config import SynthConfig, TeacherConfig
from pipeline.stages.load import iter_dataset
from pipeline.stages.synth import load_corpus, synthesize_corpus
from pipeline.synthesis.selfinstruct import SelfInstructSynthesizer
from pipeline.synthesis.teacher_free import TeacherFreeGenerator
from pipeline.synthesis.teachers import OpenAICompatTeacher
from tests.synthesis.adversarial_server import BAD, FAILURE_STRINGS, AdversarialTeacher
from tests.synthesis.fault_server import FaultServer
from tests.synthesis.test_selfinstruct_canned import ScriptedTeacher, _quote_first_sentence


def _digest(folder) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.arrow")):
        h.update(p.read_bytes())
    return h.hexdigest()


def test_adversarial_teacher_bad_classes_rejected_and_rerun_is_free(small_chunks, tmp_path):
    # Reworded duplicates need the MiniLM embedder (see test_parse_grounding); the rest is checked here.
    mix = {"good": 4, **dict.fromkeys(set(BAD) - {"reworded"}, 1), "escaped": 1, "http_500": 1, "cut_once": 1}
    cfg = SynthConfig(
        tasks=["general", "extraction", "summary"],
        questions_per_doc=10,
        target_lengths=[1024, 2048],
        evidence_mode="teacher",
        teacher_free_per_length=0,
        dedup_embedder=None,
    )
    with AdversarialTeacher(mix=mix) as srv:
        tcfg = TeacherConfig(
            kind="openai", base_url=srv.url, model="adv", concurrency=8, timeout_s=5, max_retries=2
        )
        first = synthesize_corpus([small_chunks], tmp_path / "a", cfg, tcfg, cache_path=tmp_path / "c.sqlite")
        n_calls = srv.calls
        again = synthesize_corpus([small_chunks], tmp_path / "b", cfg, tcfg, cache_path=tmp_path / "c.sqlite")
        assert srv.calls == n_calls and again.calls == 0  # the rerun asks nothing
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    kept = list(iter_dataset(tmp_path / "a", QARecord))
    rejects = list(iter_dataset(tmp_path / "a", RejectedRecord))
    questions = Counter(r.question for r in kept)
    for r in kept:
        assert srv.labels.get(r.question) not in BAD, (srv.labels.get(r.question), r.question, r.answer)
        assert questions[r.question] == 1 and srv.dup_of.get(r.question) not in questions
        assert not any(f.lower() in r.answer.lower() for f in FAILURE_STRINGS) and '\\"' not in r.answer
    reasons = Counter(r.reason for r in rejects)
    offered = Counter(srv.labels.values())
    assert offered["negated"] == 0 or reasons[RejectReason.ANSWER_CONTRADICTED] >= 1
    assert offered["known"] == 0 or reasons[RejectReason.CLOSED_BOOK_ANSWERABLE] >= 1
    assert offered["truncated"] == 0 or reasons[RejectReason.TRUNCATED] >= 1
    assert offered["soft_refusal"] == 0 or reasons[RejectReason.REFUSAL] >= 1
    contradicted = [r for r in rejects if r.reason == RejectReason.ANSWER_CONTRADICTED]
    assert all(r.detail.startswith("judge: ") and len(r.detail) > 10 for r in contradicted)
    good = sum(n for c, n in offered.items() if c not in BAD)
    assert len(kept) >= 0.8 * good and first.calls > 0
    # the dataset card of the shard build shows what synthesis rejected, by reason
    from pipeline.config import ShardConfig
    from pipeline.stages.shard import build_shards

    build_shards([tmp_path / "a"], tmp_path / "shards", ShardConfig(bucket_edges=[1024, 2048]))
    card = (tmp_path / "shards" / "README.md").read_text()
    assert "## Rejected during synthesis" in card
    assert all(f"| {reason.value} | {n} |" in card for reason, n in reasons.items())


def test_dry_run_counts_checks_and_creates_no_cache(small_chunks, tmp_path):
    cfg = SynthConfig(tasks=["general"], questions_per_doc=2, target_lengths=[1024], evidence_mode="teacher")
    tcfg = TeacherConfig(kind="openai", base_url="http://127.0.0.1:9/v1", model="m")
    res = synthesize_corpus(
        [small_chunks], tmp_path / "o", cfg, tcfg, dry_run=True, cache_path=tmp_path / "c.sqlite"
    )
    est = res.estimate
    assert est.calls == 6 and est.verify_calls == 6 and est.closed_book_calls == 6
    assert "verification" in est.line() and not (tmp_path / "c.sqlite").exists()


def test_server_error_bodies_never_leak_the_key_into_rejects(small_chunks, formatter, monkeypatch):
    monkeypatch.setenv("LW_GATE_KEY", "sk-gate-secret-42")
    echo = {"status": 500, "body": json.dumps({"echo": {"Authorization": "Bearer sk-gate-secret-42"}})}
    docs, chunks = load_corpus([small_chunks])
    cfg = SynthConfig(tasks=["general"], questions_per_doc=1, target_lengths=[1024], evidence_mode="teacher")
    with FaultServer([], default=echo) as srv:
        teacher = OpenAICompatTeacher(srv.url, "m", api_key_env="LW_GATE_KEY", max_retries=0, timeout=5)
        synth = SelfInstructSynthesizer(docs, chunks, formatter, teacher, cfg)
        out = list(synth.run(synth.plan()))
    assert out and all(o.reason == RejectReason.TEACHER_ERROR for o in out)
    assert not any("sk-gate-secret-42" in o.model_dump_json() for o in out)


def test_plan_never_repeats_a_request(small_chunks, formatter):
    docs, chunks = load_corpus([small_chunks])
    cfg = SynthConfig(tasks=["general", "summary"], questions_per_doc=12, evidence_mode="teacher")
    plan = SelfInstructSynthesizer(docs, chunks, formatter, None, cfg).plan()
    assert len({c.request for c in plan}) == len(plan)


def test_distractor_placement_hits_the_requested_depth(small_chunks, formatter):
    docs, chunks = load_corpus([small_chunks])
    cfg = SynthConfig(tasks=["general"], questions_per_doc=1)
    synth = SelfInstructSynthesizer(docs, chunks, formatter, None, cfg)
    short = min(docs, key=lambda d: d.n_chars)  # the Apache license: far shorter than 8K tokens
    text = short.text
    at = text.index("Grant of Copyright License")
    span = [(at, at + 60)]
    for want in (0.02, 0.3, 0.6, 0.75):  # the evidence sits ~400 tokens into a 2.2K document: <= ~0.8
        built = synth.assembler.assemble(
            short.doc_id, span, "Which license is granted?", "A copyright one.", 8192, want
        )
        assert built.assembly.value == "distractors"
        assert abs(built.depth_pct / 100 - want) < 0.12, (want, built.depth_pct)
        assert built.context.count("Document: ") >= 2 and "----------" in built.context
        assert built.n_tokens <= 8192


def test_build_depth_bins_are_balanced(small_chunks, formatter):
    docs, chunks = load_corpus([small_chunks])
    cfg = SynthConfig(
        tasks=["general", "extraction"],
        questions_per_doc=30,
        target_lengths=[1024, 2048, 4096],
        evidence_mode="teacher",
        dedup_threshold=0.95,
        dedup_embedder=None,
        depth_bins=5,
        verify_answers=False,
        closed_book_check=False,
    )
    synth = SelfInstructSynthesizer(docs, chunks, formatter, ScriptedTeacher(_quote_first_sentence), cfg)
    kept = [o for o in synth.run(synth.plan()) if isinstance(o, QARecord)]
    bins = Counter(min(4, int(r.evidence_depth_pct // 20)) for r in kept)
    counts = [bins[b] for b in range(5)]
    assert len(kept) >= 20 and max(counts) <= 1.5 * min(counts), counts


@pytest.mark.parametrize("length", [1024, 2048])
def test_variable_tracking_links_follow_their_variables(small_chunks, formatter, length):
    docs, _ = load_corpus([small_chunks])
    gen = TeacherFreeGenerator(docs, formatter)
    for rec in gen.generate([TaskType.VARIABLE_TRACKING], [length], 20, seed=7):
        pos = {}
        for m in re.finditer(r"VAR (\w+) = (VAR (\w+)|\d+)\.", rec.context):
            if m.group(3):
                assert m.group(3) in pos, f"VAR {m.group(1)} uses VAR {m.group(3)} before it is assigned"
            pos[m.group(1)] = m.start()


def test_document_level_tasks(small_chunks, tmp_path):
    cfg = SynthConfig(
        tasks=["general"],
        questions_per_doc=1,
        target_lengths=[2048, 4096, 16384],
        evidence_mode="teacher",
        teacher_free_per_length=0,
        dedup_embedder=None,
        doc_tasks=["doc_summary", "multi_segment", "multi_doc"],
        doc_tasks_per_doc=2,
        closed_book_check=False,
    )
    with AdversarialTeacher(mix={"good": 1}) as srv:
        tcfg = TeacherConfig(kind="openai", base_url=srv.url, model="adv", concurrency=8, timeout_s=10)
        synthesize_corpus([small_chunks], tmp_path / "o", cfg, tcfg, cache_path=tmp_path / "c.sqlite")
    kept = list(iter_dataset(tmp_path / "o", QARecord))
    by = Counter(r.task_type for r in kept)
    assert (
        by[TaskType.DOC_SUMMARY] >= 2 and by[TaskType.MULTI_SEGMENT] >= 3 and by[TaskType.MULTI_DOC] >= 3
    ), by
    for r in kept:
        if r.task_type == TaskType.DOC_SUMMARY:
            assert r.assembly.value == "whole_document" and r.n_tokens <= r.target_tokens
        if r.task_type == TaskType.MULTI_SEGMENT:
            starts = sorted(e.context_start for e in r.evidence)
            assert len(starts) >= 3 and len(r.source_chunk_ids) == 3
            assert starts[-1] - starts[0] > 0.3 * len(r.context)  # spread over the context
        if r.task_type == TaskType.MULTI_DOC:
            assert r.assembly.value == "multi_document" and len(r.doc_ids) == 2
            assert "[1]" in r.answer and "[2]" in r.answer
            assert r.context.index("Document [1]: ") < r.context.index("Document [2]: ")
            assert {e.doc_id for e in r.evidence} == set(r.doc_ids)
