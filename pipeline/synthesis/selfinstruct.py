"""Self-instruct long QA: teacher questions per chunk, grounded, gated and assembled.

A teacher proposes a question per chunk (or chunk pair), the gates keep only what the source
supports, and the assembler builds the long training context.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from data_contracts import Chunk, QARecord, RejectedRecord, RejectReason, SourceDocument, TaskType, make_id
from pipeline.chat import ChatFormatter
from pipeline.config import SynthConfig
from pipeline.synthesis import grounding, prompts
from pipeline.synthesis.assembly import Assembler
from pipeline.synthesis.dedup import NearDuplicateFilter
from pipeline.synthesis.parse import TeacherQA, parse_reply
from pipeline.synthesis.teachers import ChatRequest, ChatResponse, Teacher, TeacherError

Outcome = QARecord | RejectedRecord


@dataclass(frozen=True)
class Candidate:
    """One planned teacher call: a task over one chunk (two for multi-hop)."""

    task: TaskType
    doc_id: str
    chunks: tuple[Chunk, ...]
    request: ChatRequest
    anchors: tuple[tuple[int, int], ...] = ()  # key sentences (document spans), anchored mode only


def _messages(task: TaskType, chunks: Sequence[Chunk], version: str) -> tuple[tuple[str, str], ...]:
    return (
        ("system", prompts.render("system", version)),
        ("user", prompts.render(task.value, version, chunks=[c.text for c in chunks])),
    )


_ANCHORED = {
    TaskType.GENERAL: (
        "Write one question that the key sentence answers, and answer it from the key sentence.",
        "one or two sentences",
    ),
    TaskType.EXTRACTION: (
        "Write one question asking for the specific fact (a name, number, term or rule) stated in "
        "the key sentence, and give that fact as the answer.",
        "the fact, as short as possible",
    ),
    TaskType.SUMMARY: (
        "Write one request to summarize the excerpt (name its subject) and the summary, covering the "
        "key sentences.",
        "three to five sentences",
    ),
    TaskType.MULTI_HOP: (
        "Write one question that needs both key sentences to answer, and answer it by combining them.",
        "one to three sentences",
    ),
}
_SENTENCE = re.compile(r"(?:[^.!?\n]|\n(?![ \t]*\n))*[A-Za-z](?:[^.!?\n]|\n(?![ \t]*\n))*[.!?]")


def pick_anchor(chunk: Chunk) -> tuple[int, int] | None:
    """The most informative sentence of a chunk, as a document span (deterministic).

    Sentences of 6-60 words; content words, numbers and names score higher.
    """
    best, best_score = None, 0.0
    for m in _SENTENCE.finditer(chunk.text):
        sent = m.group(0).strip()
        if not sent[:1].isalpha():
            continue
        words = sent.split()
        if not 6 <= len(words) <= 60 or sent.count("`") > 4:
            continue
        content = grounding.content_words(sent)
        score = len(content) + 2 * sum(w.isdigit() for w in content) + sum(w[:1].isupper() for w in words[1:])
        if score > best_score:
            start = chunk.text.index(sent, m.start())
            best, best_score = (chunk.char_start + start, chunk.char_start + start + len(sent)), score
    return best


def _anchored_messages(task: TaskType, chunks: Sequence[Chunk], anchors: list[str], version: str):
    instruction, hint = _ANCHORED[task]
    return (
        ("system", prompts.render("system", version)),
        # One worked example: small teachers follow a shown format far better than a described one.
        ("user", prompts.render("anchored_example_user", version)),
        ("assistant", prompts.render("anchored_example_assistant", version)),
        (
            "user",
            prompts.render(
                "anchored",
                version,
                chunks=[c.text for c in chunks],
                anchors=anchors,
                instruction=instruction,
                answer_hint=hint,
            ),
        ),
    )


def _parse(req: ChatRequest, reply: ChatResponse) -> TeacherQA | None:
    """Parse a reply; servers that ignore the assistant prefill answer as if it were there."""
    parsed = parse_reply(reply.text)
    if parsed is None and req.prefill and not reply.text.startswith(req.prefill):
        parsed = parse_reply(req.prefill + reply.text)
    return parsed


class SelfInstructSynthesizer:
    """Plans teacher calls over chunks, runs them in batches and gates the results.

    Args:
        docs: source documents (for long contexts).
        chunks: chunks of those documents (what the teacher reads).
        formatter: the student's chat format (lengths are measured with it).
        teacher: any teacher; wrap it in :class:`~pipeline.synthesis.cache.CachedTeacher` to pay once.
        cfg: synthesis settings.

    """

    def __init__(
        self,
        docs: Sequence[SourceDocument],
        chunks: Sequence[Chunk],
        formatter: ChatFormatter,
        teacher: Teacher | None,
        cfg: SynthConfig,
    ):
        self.docs = {d.doc_id: d for d in docs}
        self.chunks: dict[str, list[Chunk]] = {}
        for c in sorted(chunks, key=lambda c: (c.doc_id, c.index)):
            if c.doc_id in self.docs:
                self.chunks.setdefault(c.doc_id, []).append(c)
        self.fmt, self.teacher, self.cfg = formatter, teacher, cfg
        self.version = prompts.prompt_version(cfg.prompt_version)
        self.assembler = Assembler(list(self.docs.values()), formatter)
        self.dedup = NearDuplicateFilter(cfg.dedup_threshold)
        self._target_turn = 0
        self._depth_rng = random.Random(cfg.seed)

    # -- planning --------------------------------------------------------------------------------
    def plan(self) -> list[Candidate]:
        """Deterministic selection of (task, chunks) per document, evenly spread over each document."""
        out = []
        tasks = [TaskType(t) for t in self.cfg.tasks]
        for d_i, doc_id in enumerate(sorted(self.chunks)):
            chunks = self.chunks[doc_id]
            n = self.cfg.questions_per_doc
            for q in range(n):
                task = tasks[(d_i + q) % len(tasks)] if tasks else TaskType.GENERAL
                i = (q * len(chunks)) // max(n, 1)
                picked: tuple[Chunk, ...] = (chunks[i],)
                if task == TaskType.MULTI_HOP:
                    if len(chunks) < 3:
                        task = TaskType.GENERAL
                    else:
                        picked = (chunks[i], chunks[(i + len(chunks) // 2) % len(chunks)])
                        picked = tuple(sorted(picked, key=lambda c: c.index))
                out.append(self._candidate(task, doc_id, picked))
        return out

    @property
    def anchored(self) -> bool:
        """Whether key sentences are picked for the teacher (instead of the teacher quoting)."""
        mode = self.cfg.evidence_mode
        return mode == "anchored" or (mode == "auto" and getattr(self.teacher, "backend", "") == "local")

    def _candidate(self, task: TaskType, doc_id: str, picked: tuple[Chunk, ...]) -> Candidate:
        common = {
            "max_tokens": self.cfg.max_new_tokens,
            "temperature": self.cfg.temperature,
            "seed": self.cfg.seed,
            "frequency_penalty": self.cfg.frequency_penalty,
        }
        if not self.anchored:
            req = ChatRequest(
                _messages(task, picked, self.cfg.prompt_version), prefill='{"evidence": ["', **common
            )
            return Candidate(task, doc_id, picked, req)
        spans = [pick_anchor(c) for c in picked]
        anchors = tuple(sp for sp in spans if sp is not None)
        text = self.docs[doc_id].text
        req = ChatRequest(
            _anchored_messages(task, picked, [text[a:b] for a, b in anchors], self.cfg.prompt_version),
            prefill='{"question": "',
            **common,
        )
        return Candidate(task, doc_id, picked, req, anchors)

    # -- running ---------------------------------------------------------------------------------
    def run(
        self,
        candidates: Sequence[Candidate],
        batch_size: int = 16,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[Outcome]:
        """Run candidates through the teacher, gates and assembler; one outcome per candidate."""
        if self.teacher is None:
            raise ValueError("self-instruct synthesis needs a teacher (use --teacher local|openai)")
        for i in range(0, len(candidates), batch_size):
            batch = list(candidates[i : i + batch_size])
            replies = self._complete_with_followups(batch)
            for cand, reply in zip(batch, replies, strict=True):
                yield self._judge(cand, reply)
                if progress:
                    progress(1)

    def _complete_with_followups(self, batch: list[Candidate]) -> list[TeacherQA | RejectedRecord]:
        """First replies, then one retry with a larger budget for truncated ones and one repair pass."""
        assert self.teacher is not None
        replies = self.teacher.complete([c.request for c in batch])
        out: list[TeacherQA | RejectedRecord | None] = [None] * len(batch)
        followups: dict[int, ChatRequest] = {}
        for k, (cand, reply) in enumerate(zip(batch, replies, strict=True)):
            if isinstance(reply, TeacherError):
                out[k] = self._reject(cand, RejectReason.TEACHER_ERROR, str(reply))
                continue
            parsed = _parse(cand.request, reply)
            if parsed is not None:
                out[k] = parsed
            elif reply.finish_reason == "length":
                followups[k] = replace(cand.request, max_tokens=cand.request.max_tokens * 2)
            else:
                followups[k] = self._repair_request(cand.request, reply)
        if followups:
            second = self.teacher.complete(list(followups.values()))
            for (k, req), reply in zip(followups.items(), second, strict=True):
                out[k] = self._second_chance(batch[k], req, reply)
        return out  # type: ignore[return-value]

    def _repair_request(self, req: ChatRequest, reply: ChatResponse) -> ChatRequest:
        keys = (
            '"question" and "answer"'
            if self.anchored
            else '"evidence" (a list of strings), "question" and "answer"'
        )
        msgs = (
            *req.messages,
            ("assistant", reply.text[:4000]),
            ("user", prompts.render("repair", self.cfg.prompt_version, keys=keys)),
        )
        return replace(req, messages=msgs, prefill="{")

    def _second_chance(self, cand: Candidate, req: ChatRequest, reply) -> TeacherQA | RejectedRecord:
        if isinstance(reply, TeacherError):
            return self._reject(cand, RejectReason.TEACHER_ERROR, str(reply))
        parsed = _parse(req, reply)
        if parsed is not None:
            return parsed
        reason = RejectReason.TRUNCATED if reply.finish_reason == "length" else RejectReason.UNPARSEABLE
        return self._reject(cand, reason, "no valid JSON after one retry", raw=reply.text)

    # -- gates -----------------------------------------------------------------------------------
    def _judge(self, cand: Candidate, reply: TeacherQA | RejectedRecord) -> Outcome:
        if isinstance(reply, RejectedRecord):
            return reply
        verdict = self._gate(cand, reply)
        if isinstance(verdict, RejectedRecord):
            return verdict
        return self._assemble(cand, reply, verdict)

    def _gate(self, cand: Candidate, qa: TeacherQA) -> list[tuple[int, int]] | RejectedRecord:
        """Evidence spans in document coordinates if every gate passes, else a typed reject."""
        question, answer = qa.question.strip(), qa.answer.strip()
        raw = qa.model_dump_json()
        if not answer:
            return self._reject(cand, RejectReason.EMPTY_ANSWER, "blank answer", raw)
        if grounding.is_refusal(answer):
            return self._reject(cand, RejectReason.REFUSAL, f"answer is a refusal: {answer[:80]!r}", raw)
        if len(question) < 10 or (cand.task == TaskType.SUMMARY and len(answer) < 40):
            return self._reject(
                cand, RejectReason.TOO_SHORT, f"question {len(question)} / answer {len(answer)} chars", raw
            )
        if len(question) > 600 or self.fmt.count(answer) > self.cfg.max_answer_tokens:
            return self._reject(cand, RejectReason.TOO_LONG, "question or answer over the limit", raw)
        if self.anchored:
            if not cand.anchors or (cand.task == TaskType.MULTI_HOP and len(cand.anchors) < 2):
                return self._reject(
                    cand, RejectReason.EVIDENCE_NOT_FOUND, "no key sentence in the chunk", raw
                )
            spans = list(enumerate(cand.anchors))
            quotes = [self.docs[cand.doc_id].text[a:b] for a, b in cand.anchors]
        else:
            spans = self._locate_evidence(cand, qa.evidence)
            if isinstance(spans, str):
                return self._reject(cand, RejectReason.EVIDENCE_NOT_FOUND, spans, raw)
            quotes = qa.evidence
        basis = " ".join(c.text for c in cand.chunks) if cand.task == TaskType.SUMMARY else " ".join(quotes)
        need = 0.3 if cand.task == TaskType.SUMMARY else self.cfg.min_support
        score = grounding.support(answer, basis)
        if score < need:
            return self._reject(cand, RejectReason.ANSWER_NOT_SUPPORTED, f"support {score:.2f} < {need}", raw)
        if cand.task == TaskType.MULTI_HOP and len({k for k, _ in spans}) < 2:
            return self._reject(
                cand, RejectReason.SINGLE_CHUNK_MULTI_HOP, "all evidence comes from one chunk", raw
            )
        if self.dedup.seen(question):
            return self._reject(
                cand, RejectReason.NEAR_DUPLICATE, "question near-duplicates an earlier one", raw
            )
        if self.cfg.closed_book_check and self._closed_book(cand, question, answer):
            return self._reject(
                cand, RejectReason.CLOSED_BOOK_ANSWERABLE, "answered correctly without the document", raw
            )
        return [s for _, s in spans]

    def _locate_evidence(self, cand: Candidate, quotes: list[str]) -> list[tuple[int, tuple[int, int]]] | str:
        if not quotes:
            return "no evidence quoted"
        found = []
        for quote in quotes:
            if len(quote.strip()) < 8:
                return f"evidence too short to locate: {quote!r}"
            for k, chunk in enumerate(cand.chunks):
                span = grounding.locate(quote, chunk.text)
                if span is not None:
                    found.append((k, (chunk.char_start + span[0], chunk.char_start + span[1])))
                    break
            else:
                return f"quote not in the source: {quote[:80]!r}"
        return found

    def _closed_book(self, cand: Candidate, question: str, answer: str) -> bool:
        assert self.teacher is not None
        req = ChatRequest(
            (("user", prompts.render("closed_book", self.cfg.prompt_version, question=question)),),
            max_tokens=96,
            temperature=0.0,
            seed=self.cfg.seed,
            json_mode=False,
        )
        reply = self.teacher.complete([req])[0]
        return isinstance(reply, ChatResponse) and grounding.token_f1(reply.text, answer) >= 0.6

    # -- assembly --------------------------------------------------------------------------------
    def _assemble(self, cand: Candidate, qa: TeacherQA, spans: list[tuple[int, int]]) -> Outcome:
        targets = sorted(self.cfg.target_lengths)
        self._target_turn += 1
        order = targets[self._target_turn % len(targets) :] + targets[: self._target_turn % len(targets)]
        depth = (
            self._depth_rng.randrange(self.cfg.depth_bins) + self._depth_rng.random()
        ) / self.cfg.depth_bins
        question, answer = qa.question.strip(), qa.answer.strip()
        for target in order:  # the scheduled target first, then any other that fits the evidence
            built = self.assembler.assemble(cand.doc_id, spans, question, answer, target, depth)
            if built is not None and built.n_tokens <= target:
                break
        else:
            return self._reject(
                cand, RejectReason.TOO_LONG, f"evidence does not fit any of {targets}", qa.model_dump_json()
            )
        chunk_ids = [c.chunk_id for c in cand.chunks]
        return QARecord(
            qa_id=make_id("qa", self.version, cand.task.value, chunk_ids, question, target),
            task_type=cand.task,
            question=question,
            answer=answer,
            context=built.context,
            context_segments=built.segments,
            evidence=built.evidence,
            evidence_depth_pct=built.depth_pct,
            assembly=built.assembly,
            doc_ids=built.doc_ids,
            source_chunk_ids=chunk_ids,
            teacher_backend=self.teacher.backend,
            teacher_model=self.teacher.model,
            prompt_version=self.version,
            target_tokens=target,
            n_tokens=built.n_tokens,
            answer_tokens=self.fmt.count(answer),
            seed=self.cfg.seed,
        )

    def _reject(
        self, cand: Candidate, reason: RejectReason, detail: str, raw: str | None = None
    ) -> RejectedRecord:
        chunk_ids = [c.chunk_id for c in cand.chunks]
        return RejectedRecord(
            reject_id=make_id("rej", self.version, cand.task.value, chunk_ids, reason.value, detail),
            stage="synthesis",
            reason=reason,
            detail=detail,
            task_type=cand.task,
            doc_ids=[cand.doc_id],
            source_chunk_ids=chunk_ids,
            teacher_model=self.teacher.model if self.teacher else None,
            prompt_version=self.version,
            raw=raw[:2000] if raw else None,
        )
