"""Teacher-checked gates: answer verification against the evidence, and the closed-book check.

Deterministic gates catch quotes that are not in the source and answers made of other words;
they cannot see an answer that negates its verbatim evidence. A judge model (the teacher, or a
second model) reads the evidence, the question and the answer and gives a typed verdict.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from data_contracts import RejectReason
from pipeline.synthesis import grounding, prompts
from pipeline.synthesis.teachers import ChatRequest, ChatResponse, TeacherError

_VERDICTS = {
    "supported": None,
    "contradicted": RejectReason.ANSWER_CONTRADICTED,
    "not_supported": RejectReason.ANSWER_NOT_SUPPORTED,
}
_WORD = re.compile(r"\b(not[ _]supported|unsupported|contradicted|supported)\b", re.I)


@dataclass(frozen=True)
class Verdict:
    """A judge's verdict: ``reject`` is ``None`` when the answer is supported."""

    reject: RejectReason | None
    reason: str


def verify_request(evidence: str, question: str, answer: str, version: str, seed: int) -> ChatRequest:
    """The judge request for one QA pair (greedy, JSON, short)."""
    text = prompts.render("verify", version, evidence=evidence, question=question, answer=answer)
    return ChatRequest((("user", text),), max_tokens=128, temperature=0.0, seed=seed, json_mode=True)


def parse_verdict(reply: ChatResponse | TeacherError) -> Verdict:
    """Read a judge reply; a failed or unreadable one rejects (never kept on faith)."""
    if isinstance(reply, TeacherError):
        return Verdict(RejectReason.TEACHER_ERROR, f"verifier failed: {reply}")
    verdict, reason = None, ""
    try:
        data = json.loads(reply.text[reply.text.find("{") : reply.text.rfind("}") + 1])
        verdict = str(data.get("verdict", "")).strip().lower().replace(" ", "_").replace("-", "_")
        reason = str(data.get("reason", "")).strip()
    except (ValueError, AttributeError):
        m = _WORD.search(reply.text)
        verdict = m.group(1).lower().replace(" ", "_") if m else None
        reason = reply.text.strip()
    verdict = "not_supported" if verdict == "unsupported" else verdict
    if verdict not in _VERDICTS:
        return Verdict(RejectReason.TEACHER_ERROR, f"verifier gave no verdict: {reply.text[:120]!r}")
    return Verdict(_VERDICTS[verdict], reason[:300] or verdict)


def closed_book_request(question: str, version: str, seed: int) -> ChatRequest:
    """The question alone, no document: a teacher that answers it right did not need the document."""
    text = prompts.render("closed_book", version, question=question)
    return ChatRequest((("user", text),), max_tokens=96, temperature=0.0, seed=seed, json_mode=False)


def answered_closed_book(reply: ChatResponse | TeacherError, answer: str) -> bool:
    """Whether the closed-book reply gives the same answer (token F1 >= 0.6)."""
    return isinstance(reply, ChatResponse) and grounding.token_f1(reply.text, answer) >= 0.6
