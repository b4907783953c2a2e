"""Self-instruct with canned teacher replies: every gate, assembly, and the counts adding up."""

from __future__ import annotations

import json
import threading
from collections import Counter

from data_contracts import QARecord, RejectedRecord, RejectReason, TaskType
from pipeline.config import SynthConfig
from pipeline.stages.synth import load_corpus
from pipeline.synthesis.selfinstruct import SelfInstructSynthesizer
from pipeline.synthesis.teachers import ChatResponse, TeacherError


class ScriptedTeacher:
    """Canned replies chosen by a function of the request (for unit tests of the gates)."""

    backend, model = "scripted", "canned-v1"

    def __init__(self, reply):
        self.reply, self.calls = reply, 0
        self._lock = threading.Lock()

    def complete(self, requests):
        with self._lock:  # called from the dispatcher's threads
            self.calls += len(requests)
            return [self.reply(r) for r in requests]


def _excerpt(req) -> str:
    user = req.messages[-1][1] if req.messages[-1][0] == "user" else req.messages[1][1]
    return user.split('"""')[1].strip()


def _quote_first_sentence(req):
    text = _excerpt(req)
    sentence = next(s.strip() + "." for s in text.replace("\n", " ").split(". ") if len(s.split()) >= 6)
    words = sentence.split()
    return ChatResponse(
        json.dumps(
            {
                "evidence": [sentence],
                "question": f"What does the text say about {words[1]} {words[2]}?",
                "answer": " ".join(words[:8]),
            }
        ),
        "stop",
    )


def test_grounded_replies_become_records_with_evidence_in_context(small_chunks, formatter):
    docs, chunks = load_corpus([small_chunks])
    cfg = SynthConfig(
        tasks=["general", "extraction"],
        questions_per_doc=2,
        target_lengths=[1024, 2048, 4096],
        evidence_mode="teacher",
        dedup_threshold=0.95,
    )
    synth = SelfInstructSynthesizer(docs, chunks, formatter, ScriptedTeacher(_quote_first_sentence), cfg)
    plan = synth.plan()
    out = list(synth.run(plan))
    kept = [o for o in out if isinstance(o, QARecord)]
    assert len(out) == len(plan) and kept
    for rec in kept:
        for ev in rec.evidence:
            assert rec.context[ev.context_start : ev.context_end] == ev.quote
        assert (
            rec.n_tokens <= rec.target_tokens
            and formatter.count_example(rec.context, rec.question, rec.answer) == rec.n_tokens
        )
        assert rec.teacher_model == "canned-v1" and rec.prompt_version.startswith("v1-")
    assert {r.assembly.value for r in kept} <= {"whole_document", "window", "distractors"}


def test_every_gate_rejects_with_its_reason(small_chunks, formatter):
    docs, chunks = load_corpus([small_chunks])
    scripts = [
        [TeacherError("HTTP 400: bad", 400)],
        [ChatResponse("not json at all", "stop"), ChatResponse("still not json", "stop")],  # then its repair
        [
            ChatResponse(
                '{"evidence": ["this sentence is nowhere in the text"], "question": "Why is that so?", "answer": "x"}',
                "stop",
            )
        ],
        [
            ChatResponse(
                '{"evidence": ["x"], "question": "Is it so?", "answer": "I\'m sorry, I cannot answer."}',
                "stop",
            )
        ],
        [ChatResponse('{"evidence": ["x"], "question": "Is it so?", "answer": ""}', "stop")],
        # cut twice (the retry has twice the budget): truncated, even though the second one parses
        [
            ChatResponse('{"evidence": ["truncated', "length"),
            ChatResponse(
                '{"evidence": ["a b c d e f g h"], "question": "What does it say?", "answer": "This does not"}',
                "length",
            ),
        ],
    ]
    cfg = SynthConfig(tasks=["general"], questions_per_doc=2, target_lengths=[2048], evidence_mode="teacher")
    synth = SelfInstructSynthesizer(docs, chunks, formatter, None, cfg)
    plan = synth.plan()[:6]
    by_prompt = {c.request.messages[1][1]: iter(script) for c, script in zip(plan, scripts, strict=True)}
    synth.teacher = synth.judge = ScriptedTeacher(lambda r: next(by_prompt[r.messages[1][1]]))
    out = list(synth.run(plan))
    reasons = [o.reason for o in out if isinstance(o, RejectedRecord)]
    assert reasons == [
        RejectReason.TEACHER_ERROR,
        RejectReason.UNPARSEABLE,
        RejectReason.EVIDENCE_NOT_FOUND,
        RejectReason.REFUSAL,
        RejectReason.EMPTY_ANSWER,
        RejectReason.TRUNCATED,
    ]
    assert all(
        o.raw is None or "I'm sorry" not in (o.raw or "") or o.reason == RejectReason.REFUSAL for o in out
    )


def test_multi_hop_needs_evidence_from_two_chunks_and_duplicates_are_dropped(small_chunks, formatter):
    docs, chunks = load_corpus([small_chunks])
    cfg = SynthConfig(
        tasks=["multi_hop"], questions_per_doc=2, target_lengths=[4096], evidence_mode="teacher"
    )
    synth = SelfInstructSynthesizer(docs, chunks, formatter, ScriptedTeacher(_quote_first_sentence), cfg)
    out = list(synth.run(synth.plan()))
    reasons = Counter(o.reason for o in out if isinstance(o, RejectedRecord))
    assert reasons[RejectReason.SINGLE_CHUNK_MULTI_HOP] >= 1
    assert all(o.task_type == TaskType.MULTI_HOP for o in out if isinstance(o, QARecord))


def test_anchored_mode_uses_key_sentences(small_chunks, formatter):
    docs, chunks = load_corpus([small_chunks])
    cfg = SynthConfig(
        tasks=["extraction"], questions_per_doc=2, target_lengths=[2048], evidence_mode="anchored"
    )

    def answer_from_anchor(req):
        anchor = req.messages[-1][1].split('Key sentence:\n- "')[1].split('"\n')[0]
        return ChatResponse(
            json.dumps(
                {
                    "question": "Which rule does the document state here?",
                    "answer": " ".join(anchor.split()[:10]),
                }
            ),
            "stop",
        )

    synth = SelfInstructSynthesizer(docs, chunks, formatter, ScriptedTeacher(answer_from_anchor), cfg)
    kept = [o for o in synth.run(synth.plan()) if isinstance(o, QARecord)]
    assert kept
    for rec in kept:
        ev = rec.evidence[0]
        assert rec.context[ev.context_start : ev.context_end] == ev.quote
        assert grounding_ok(rec)


def grounding_ok(rec) -> bool:
    from pipeline.synthesis.grounding import support

    return support(rec.answer, " ".join(e.quote for e in rec.evidence)) >= 0.5
