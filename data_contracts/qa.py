"""Synthesized long-context QA records and the records rejected on the way."""

from __future__ import annotations

import enum

from pydantic import Field, model_validator

from data_contracts._base import Record


class TaskType(enum.StrEnum):
    """What a record trains: LongAlign's four self-instruct types or a teacher-free task."""

    GENERAL = "general"
    SUMMARY = "summary"
    MULTI_HOP = "multi_hop"
    EXTRACTION = "extraction"
    DOC_SUMMARY = "doc_summary"  # the whole document, graded against its section summaries
    MULTI_SEGMENT = "multi_segment"  # needs >= 3 segments spread over the context (IN2-style)
    MULTI_DOC = "multi_doc"  # needs two documents; the answer cites them as [1], [2]
    PASSKEY = "passkey"
    NEEDLE_MULTIKEY = "needle_multikey"
    KV_RETRIEVAL = "kv_retrieval"
    VARIABLE_TRACKING = "variable_tracking"

    @property
    def teacher_free(self) -> bool:
        """True for tasks built by code with exact answers, no LLM involved."""
        return self in TEACHER_FREE


TEACHER_FREE = frozenset(
    {TaskType.PASSKEY, TaskType.NEEDLE_MULTIKEY, TaskType.KV_RETRIEVAL, TaskType.VARIABLE_TRACKING}
)


class Assembly(enum.StrEnum):
    """How the training context around the evidence was built."""

    WHOLE_DOCUMENT = "whole_document"
    WINDOW = "window"
    DISTRACTORS = "distractors"
    HAYSTACK = "haystack"
    MULTI_DOCUMENT = "multi_document"


class ContextSegment(Record):
    """A piece of the context: ``doc.text[doc_start:doc_end]`` placed at ``context_start``."""

    CONTRACT = "context_segment"
    VERSION = 1

    doc_id: str
    doc_start: int = Field(ge=0)
    doc_end: int = Field(ge=0)
    context_start: int = Field(ge=0)


class EvidenceSpan(Record):
    """A verbatim quote supporting the answer, located in the context (and in its document)."""

    CONTRACT = "evidence_span"
    VERSION = 1

    quote: str
    context_start: int = Field(ge=0)
    context_end: int = Field(ge=0)
    doc_id: str | None = None
    chunk_id: str | None = None


class QARecord(Record):
    """One training example: a context, a question about it and a grounded answer.

    The context is stored materialised (it is what the student sees) with the provenance of
    each segment, so every evidence quote can be checked against it without other files.
    Lengths are in the *student* tokenizer with its chat template applied.
    """

    CONTRACT = "qa_record"
    VERSION = 1

    qa_id: str
    task_type: TaskType
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    context: str
    context_segments: list[ContextSegment]
    evidence: list[EvidenceSpan]
    evidence_depth_pct: float = Field(ge=0.0, le=100.0)
    assembly: Assembly
    doc_ids: list[str]
    source_chunk_ids: list[str] = Field(default_factory=list)
    teacher_backend: str
    teacher_model: str
    prompt_version: str
    target_tokens: int = Field(ge=0)
    n_tokens: int = Field(ge=0)
    answer_tokens: int = Field(ge=0)
    seed: int | None = None

    @model_validator(mode="after")
    def _check(self) -> QARecord:
        if not self.answer.strip():
            raise ValueError("answer is blank")
        for ev in self.evidence:
            if self.context[ev.context_start : ev.context_end] != ev.quote:
                raise ValueError(
                    f"evidence quote {ev.quote[:40]!r} is not at context[{ev.context_start}:{ev.context_end}]"
                )
        return self


class RejectReason(enum.StrEnum):
    """Why a candidate record was not kept. Every drop is counted under one of these."""

    UNPARSEABLE = "unparseable"
    TRUNCATED = "truncated"
    EMPTY_ANSWER = "empty_answer"
    REFUSAL = "refusal"
    EVIDENCE_NOT_FOUND = "evidence_not_found"
    ANSWER_NOT_SUPPORTED = "answer_not_supported"
    ANSWER_CONTRADICTED = "answer_contradicted"
    CLOSED_BOOK_ANSWERABLE = "closed_book_answerable"
    NEAR_DUPLICATE = "near_duplicate"
    SINGLE_CHUNK_MULTI_HOP = "single_chunk_multi_hop"
    MISSING_CITATION = "missing_citation"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    TEACHER_ERROR = "teacher_error"
    OVER_MAX_BUCKET = "over_max_bucket"
    BAD_INPUT = "bad_input"


class RejectedRecord(Record):
    """A candidate that failed a gate: kept as data so counts add up and nothing is silently lost."""

    CONTRACT = "rejected_record"
    VERSION = 1

    reject_id: str
    stage: str
    reason: RejectReason
    detail: str
    task_type: TaskType | None = None
    doc_ids: list[str] = Field(default_factory=list)
    source_chunk_ids: list[str] = Field(default_factory=list)
    teacher_model: str | None = None
    prompt_version: str | None = None
    raw: str | None = Field(default=None, description="teacher output, truncated")
