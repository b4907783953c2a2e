"""Self-instruct long QA: teacher questions per chunk, grounded, gated and assembled.

A teacher proposes a question per chunk (or chunk pair), the gates keep only what the source
supports, and the assembler builds the long training context.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from data_contracts import (
    Assembly,
    Chunk,
    QARecord,
    RejectedRecord,
    RejectReason,
    SourceDocument,
    TaskType,
    make_id,
)
from pipeline.chat import ChatFormatter
from pipeline.config import SynthConfig
from pipeline.synthesis import doc_tasks, grounding, prompts, verify
from pipeline.synthesis.assembly import Assembler
from pipeline.synthesis.context import ContextBuilder
from pipeline.synthesis.dedup import NearDuplicateFilter
from pipeline.synthesis.dispatch import Dispatcher
from pipeline.synthesis.parse import TeacherQA, parse_reply
from pipeline.synthesis.teachers import ChatRequest, ChatResponse, Teacher, TeacherError, redact

Outcome = QARecord | RejectedRecord


@dataclass(frozen=True)
class Candidate:
    """One planned teacher call: a task over one chunk (two for multi-hop)."""

    task: TaskType
    doc_id: str
    chunks: tuple[Chunk, ...]
    request: ChatRequest
    anchors: tuple[tuple[int, int], ...] = ()  # key sentences (document spans), anchored mode only


@dataclass(frozen=True)
class Screened:
    """A candidate after the teacher and every per-candidate gate: a QA with its spans, or a reject."""

    qa: TeacherQA | None = None
    spans: tuple[tuple[int, tuple[int, int]], ...] = ()  # (chunk index, document char span)
    reject: RejectedRecord | None = None


def _messages(
    task: TaskType, chunks: Sequence[Chunk], version: str, titles: Sequence[str] = ()
) -> tuple[tuple[str, str], ...]:
    values = {"titles": list(titles)} if task == TaskType.MULTI_DOC else {}
    return (
        ("system", prompts.render("system", version)),
        ("user", prompts.render(task.value, version, chunks=[c.text for c in chunks], **values)),
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
    TaskType.MULTI_SEGMENT: (
        "Write one question that needs every key sentence to answer, and answer it by combining them.",
        "one to four sentences",
    ),
}
_CITATION = re.compile(r"\[\d+\]")
_SEGMENTS = 3  # multi-segment questions read this many chunks spread over the context
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
        *,
        judge: Teacher | None = None,
        embedder=None,
    ):
        self.docs = {d.doc_id: d for d in docs}
        self.chunks: dict[str, list[Chunk]] = {}
        for c in sorted(chunks, key=lambda c: (c.doc_id, c.index)):
            if c.doc_id in self.docs:
                self.chunks.setdefault(c.doc_id, []).append(c)
        self.fmt, self.teacher, self.cfg = formatter, teacher, cfg
        self.judge = judge or teacher
        self.version = prompts.prompt_version(cfg.prompt_version)
        self.assembler = Assembler(list(self.docs.values()), formatter)
        self.dedup = NearDuplicateFilter(cfg.dedup_threshold, embedder=embedder, cosine=cfg.dedup_cosine)
        self._target_turn = 0
        self._depth_rng = random.Random(cfg.seed)
        self.depth_counts = [0] * cfg.depth_bins

    def _auto(self, setting: bool | str) -> bool:
        """Resolve an ``auto`` gate: on for served teachers, off for the small local stand-in."""
        if setting == "auto":
            return getattr(self.teacher, "backend", "") == "openai"
        return bool(setting)

    @property
    def verifying(self) -> bool:
        """Whether a judge checks every answer against its evidence."""
        return self._auto(self.cfg.verify_answers)

    @property
    def closed_book(self) -> bool:
        """Whether questions the teacher answers without the document are dropped."""
        return self._auto(self.cfg.closed_book_check)

    # -- planning --------------------------------------------------------------------------------
    def plan(self) -> list[Candidate]:
        """Deterministic selection of (task, chunks) per document, evenly spread over each document.

        A (task, chunks) pair is planned once: when a document has fewer chunks than questions, the
        next unused chunk is taken instead of asking the same thing twice.
        """
        out = []
        tasks = [TaskType(t) for t in self.cfg.tasks]
        for d_i, doc_id in enumerate(sorted(self.chunks)):
            chunks = self.chunks[doc_id]
            n = self.cfg.questions_per_doc
            used: set[tuple] = set()
            for q in range(n):
                task = tasks[(d_i + q) % len(tasks)] if tasks else TaskType.GENERAL
                base = (q * len(chunks)) // max(n, 1)
                for shift in range(len(chunks)):
                    picked, kind = self._pick(task, chunks, (base + shift) % len(chunks))
                    key = (kind, tuple(c.chunk_id for c in picked))
                    if key not in used:
                        used.add(key)
                        out.append(self._candidate(kind, doc_id, picked))
                        break
            out.extend(self._doc_candidates(doc_id, chunks))
        return out

    def _doc_candidates(self, doc_id: str, chunks: list[Chunk]) -> list[Candidate]:
        """Document-level candidates: one whole-document summary, multi-segment questions."""
        out = []
        targets = sorted(self.cfg.target_lengths)
        for task in self.cfg.doc_tasks:
            if task == "doc_summary" and len(chunks) > 1:
                reqs = doc_tasks.map_requests(
                    chunks, self.cfg.prompt_version, self.cfg.seed, self.cfg.max_new_tokens
                )
                out.append(Candidate(TaskType.DOC_SUMMARY, doc_id, tuple(chunks), reqs[0]))
            elif task == "multi_doc" and len(self.chunks) > 1:
                others = sorted(self.chunks)
                other = others[(others.index(doc_id) + 1) % len(others)]
                for k in range(self.cfg.doc_tasks_per_doc):
                    mine, theirs = self.chunks[doc_id], self.chunks[other]
                    pair = (mine[(k * 7) % len(mine)], theirs[(k * 5 + 1) % len(theirs)])
                    out.append(self._candidate(TaskType.MULTI_DOC, doc_id, pair))
            elif task == "multi_segment":
                seen = set()
                for k in range(self.cfg.doc_tasks_per_doc):
                    # k-th question: segments spread over ~80% of the k-th target length (cycling)
                    span = int(0.8 * targets[k % len(targets)])
                    picked = doc_tasks.spread(chunks, _SEGMENTS, span, k * max(1, len(chunks) // 3))
                    ids = tuple(c.chunk_id for c in picked) if picked is not None else None
                    if ids is not None and ids not in seen:
                        seen.add(ids)
                        out.append(self._candidate(TaskType.MULTI_SEGMENT, doc_id, picked))
        return out

    @staticmethod
    def _pick(task: TaskType, chunks: list[Chunk], i: int) -> tuple[tuple[Chunk, ...], TaskType]:
        if task != TaskType.MULTI_HOP:
            return (chunks[i],), task
        if len(chunks) < 3:
            return (chunks[i],), TaskType.GENERAL
        pair = (chunks[i], chunks[(i + len(chunks) // 2) % len(chunks)])
        return tuple(sorted(pair, key=lambda c: c.index)), task

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
                _messages(task, picked, self.cfg.prompt_version, [self._title(c.doc_id) for c in picked]),
                prefill='{"evidence": ["',
                **common,
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
        """Run candidates through the teacher, gates and assembler; one outcome per candidate, in order.

        Each candidate is screened on a worker thread (generation, retries, deterministic gates,
        then verification and the closed-book check side by side), feeding one shared
        :class:`Dispatcher` that keeps the teacher's ``concurrency`` requests in flight. Steps that
        depend on order (duplicate detection, depth balancing, assembly) run here, in plan order,
        while later candidates are still being generated. ``batch_size`` is kept for callers; the
        teacher's own ``max_batch`` decides how requests are grouped.
        """
        if self.teacher is None:
            raise ValueError("self-instruct synthesis needs a teacher (use --teacher local|openai)")
        gen = Dispatcher(self.teacher)
        judge = gen if self.judge is self.teacher else Dispatcher(self.judge)
        workers = min(64, max(4, 2 * gen.concurrency * gen.max_batch))
        pool = ThreadPoolExecutor(workers, thread_name_prefix="screen")
        try:
            todo = iter(candidates)
            window = deque(
                (c, pool.submit(self._screen, c, gen, judge)) for c in itertools.islice(todo, 4 * workers)
            )
            while window:
                cand, fut = window.popleft()
                nxt = next(todo, None)
                if nxt is not None:
                    window.append((nxt, pool.submit(self._screen, nxt, gen, judge)))
                yield self._finish(cand, fut.result())
                if progress:
                    progress(1)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            gen.close()
            if judge is not gen:
                judge.close()

    def _screen(self, cand: Candidate, gen: Dispatcher, judge: Dispatcher) -> Screened:
        """Everything about one candidate that does not depend on the others."""
        if cand.task == TaskType.DOC_SUMMARY:
            return self._doc_summary(cand, gen, judge)
        qa = self._generate(cand, gen)
        if isinstance(qa, RejectedRecord):
            return Screened(reject=qa)
        verdict = self._gate(cand, qa)
        if isinstance(verdict, RejectedRecord):
            return Screened(reject=verdict)
        spans, evidence = verdict
        question, answer, raw = qa.question.strip(), qa.answer.strip(), qa.model_dump_json()
        checks = {}
        if self.verifying:
            req = verify.verify_request(evidence, question, answer, self.cfg.prompt_version, self.cfg.seed)
            checks["verify"] = judge.submit(req)
        if self.closed_book:
            checks["closed"] = gen.submit(
                verify.closed_book_request(question, self.cfg.prompt_version, self.cfg.seed)
            )
        if "verify" in checks:
            v = verify.parse_verdict(checks["verify"].result())
            if v.reject is not None:
                detail = (
                    redact(f"judge: {v.reason}")
                    if v.reject != RejectReason.TEACHER_ERROR
                    else redact(v.reason)
                )
                return Screened(reject=self._reject(cand, v.reject, detail, raw))
        if "closed" in checks and verify.answered_closed_book(checks["closed"].result(), answer):
            return Screened(
                reject=self._reject(
                    cand, RejectReason.CLOSED_BOOK_ANSWERABLE, "answered correctly without the document", raw
                )
            )
        return Screened(qa=qa, spans=tuple(spans))

    def _finish(self, cand: Candidate, screened: Screened) -> Outcome:
        """The order-dependent steps: duplicates, then assembly at a balanced depth."""
        if screened.reject is not None:
            return screened.reject
        assert screened.qa is not None
        how = self.dedup.match(screened.qa.question.strip())
        if how is not None:
            return self._reject(
                cand,
                RejectReason.NEAR_DUPLICATE,
                f"question near-duplicates an earlier one ({how})",
                screened.qa.model_dump_json(),
            )
        if cand.task == TaskType.DOC_SUMMARY:
            return self._assemble_document(cand, screened.qa)
        if cand.task == TaskType.MULTI_DOC:
            return self._assemble_documents(cand, screened.qa, list(screened.spans))
        return self._assemble(cand, screened.qa, [sp for _, sp in screened.spans])

    def _title(self, doc_id: str) -> str:
        doc = self.docs[doc_id]
        return doc.title or doc.source.rsplit("/", 1)[-1]

    def _assemble_documents(self, cand: Candidate, qa: TeacherQA, spans: list) -> Outcome:
        """Multi-document QA: the documents in citation order, at the smallest target that holds them."""
        question, answer = qa.question.strip(), qa.answer.strip()
        parts = [(c.doc_id, [sp for k, sp in spans if k == i]) for i, c in enumerate(cand.chunks)]
        for target in sorted(self.cfg.target_lengths):
            built = self.assembler.assemble_documents(parts, question, answer, target)
            if built is not None and built.n_tokens <= target:
                return self._record_built(cand, question, answer, built, target, Assembly.MULTI_DOCUMENT)
        return self._reject(
            cand, RejectReason.TOO_LONG, "the documents' evidence fits no target", qa.model_dump_json()
        )

    def _doc_summary(self, cand: Candidate, gen: Dispatcher, judge: Dispatcher) -> Screened:
        """Map over the chunks, reduce to one summary, grade it against the section summaries."""
        cfg = self.cfg
        reqs = doc_tasks.map_requests(cand.chunks, cfg.prompt_version, cfg.seed, cfg.max_new_tokens)
        replies = [f.result() for f in [gen.submit(r) for r in reqs]]
        mapped = doc_tasks.grade_map(cand.chunks, replies, cfg.min_support)
        if len(mapped.summaries) < 0.8 * len(cand.chunks):
            detail = f"{len(mapped.failures)} of {len(cand.chunks)} section summaries failed: " + "; ".join(
                mapped.failures[:5]
            )
            return Screened(reject=self._reject(cand, RejectReason.ANSWER_NOT_SUPPORTED, detail))
        doc = self.docs[cand.doc_id]
        req = doc_tasks.reduce_request(
            doc, mapped.summaries, cfg.prompt_version, cfg.seed, 2 * cfg.max_new_tokens
        )
        reply = gen.submit(req).result()
        if isinstance(reply, TeacherError):
            return Screened(reject=self._reject(cand, RejectReason.TEACHER_ERROR, redact(str(reply))))
        if reply.finish_reason == "length":
            return Screened(reject=self._reject(cand, RejectReason.TRUNCATED, "summary cut", raw=reply.text))
        qa = doc_tasks.parse_reduce(reply)
        if qa is None:
            return Screened(
                reject=self._reject(cand, RejectReason.UNPARSEABLE, "no summary JSON", raw=reply.text)
            )
        question, answer, raw = qa.question.strip(), qa.answer.strip(), qa.model_dump_json()
        if grounding.is_refusal(answer) or len(answer) < 80 or len(question) < 10:
            return Screened(
                reject=self._reject(cand, RejectReason.TOO_SHORT, "summary missing or too short", raw)
            )
        basis = "\n".join(mapped.summaries)
        score = grounding.support(answer, basis)
        if score < cfg.min_support:
            detail = f"support {score:.2f} against the section summaries < {cfg.min_support}"
            return Screened(reject=self._reject(cand, RejectReason.ANSWER_NOT_SUPPORTED, detail, raw))
        if self.verifying:
            v = verify.parse_verdict(
                judge.submit(
                    verify.verify_request(basis, question, answer, cfg.prompt_version, cfg.seed)
                ).result()
            )
            if v.reject is not None:
                return Screened(reject=self._reject(cand, v.reject, redact(f"judge: {v.reason}"), raw))
        return Screened(qa=qa)

    def _assemble_document(self, cand: Candidate, qa: TeacherQA) -> Outcome:
        """The whole document as the context, at the smallest target it fits."""
        question, answer = qa.question.strip(), qa.answer.strip()
        text = self.docs[cand.doc_id].text
        n = self.fmt.count_example(text, question, answer)
        target = next((t for t in sorted(self.cfg.target_lengths) if n <= t), None)
        if target is None:
            detail = f"the document ({n} tokens with the QA) is longer than every target {sorted(self.cfg.target_lengths)}"
            return self._reject(cand, RejectReason.TOO_LONG, detail, qa.model_dump_json())
        ctx = ContextBuilder()
        ctx.add(text, cand.doc_id, 0)
        return self._record(
            cand,
            question,
            answer,
            text,
            ctx.segments(),
            [],
            0.0,
            Assembly.WHOLE_DOCUMENT,
            [cand.doc_id],
            target,
            n,
        )

    def _generate(self, cand: Candidate, gen: Dispatcher) -> TeacherQA | RejectedRecord:
        """The teacher's reply, parsed.

        A cut reply is asked again with twice the budget, an unparseable one gets one repair turn;
        a reply still cut is ``truncated`` even if it parses.
        """
        req = cand.request
        reply = gen.submit(req).result()
        if isinstance(reply, TeacherError):
            return self._reject(cand, RejectReason.TEACHER_ERROR, redact(str(reply)))
        if reply.finish_reason == "length":
            req = replace(req, max_tokens=req.max_tokens * 2)
            reply = gen.submit(req).result()
            if isinstance(reply, TeacherError):
                return self._reject(cand, RejectReason.TEACHER_ERROR, redact(str(reply)))
            if reply.finish_reason == "length":
                return self._reject(
                    cand,
                    RejectReason.TRUNCATED,
                    f"reply cut at {req.max_tokens} tokens twice",
                    raw=reply.text,
                )
        parsed = _parse(req, reply)
        if parsed is not None:
            return parsed
        repair = self._repair_request(req, reply)
        second = gen.submit(repair).result()
        if isinstance(second, TeacherError):
            return self._reject(cand, RejectReason.TEACHER_ERROR, redact(str(second)))
        parsed = _parse(repair, second)
        if parsed is not None and second.finish_reason != "length":
            return parsed
        reason = RejectReason.TRUNCATED if second.finish_reason == "length" else RejectReason.UNPARSEABLE
        return self._reject(cand, reason, "no valid JSON after one repair", raw=second.text)

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

    # -- gates -----------------------------------------------------------------------------------
    def _gate(self, cand: Candidate, qa: TeacherQA) -> tuple[list, str] | RejectedRecord:
        """Evidence spans (document coordinates) and the evidence text if every gate passes, else a reject."""
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
            if not cand.anchors or len(cand.anchors) < len(cand.chunks):
                return self._reject(
                    cand, RejectReason.EVIDENCE_NOT_FOUND, "no key sentence in the chunk", raw
                )
            spans = list(enumerate(cand.anchors))
        else:
            spans = self._locate_evidence(cand, qa.evidence)
            if isinstance(spans, str):
                return self._reject(cand, RejectReason.EVIDENCE_NOT_FOUND, spans, raw)
        # Support is measured on the source text the quotes were found at (an elided quote counts
        # whole), and a summary against its evidence, not against the whole chunk.
        evidence = "\n".join(self.docs[cand.chunks[k].doc_id].text[a:b] for k, (a, b) in spans)
        if cand.task == TaskType.SUMMARY and self.anchored:
            evidence = "\n".join(c.text for c in cand.chunks)
        score = grounding.support(_CITATION.sub(" ", answer), evidence)  # "[2]" is not a claim
        if score < self.cfg.min_support:
            return self._reject(
                cand, RejectReason.ANSWER_NOT_SUPPORTED, f"support {score:.2f} < {self.cfg.min_support}", raw
            )
        if cand.task == TaskType.MULTI_DOC:
            missing = [f"[{i}]" for i in range(1, len(cand.chunks) + 1) if f"[{i}]" not in answer]
            if missing:
                detail = f"answer does not cite document {', '.join(missing)}"
                return self._reject(cand, RejectReason.MISSING_CITATION, detail, raw)
        if cand.task in (TaskType.MULTI_HOP, TaskType.MULTI_SEGMENT, TaskType.MULTI_DOC):
            got = len({k for k, _ in spans})
            if got < len(cand.chunks):
                return self._reject(
                    cand,
                    RejectReason.SINGLE_CHUNK_MULTI_HOP,
                    f"evidence from {got} of the {len(cand.chunks)} segments it must combine",
                    raw,
                )
        judge_text = "\n".join(c.text for c in cand.chunks) if cand.task == TaskType.SUMMARY else evidence
        return spans, judge_text

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

    # -- assembly --------------------------------------------------------------------------------
    def _assemble(self, cand: Candidate, qa: TeacherQA, spans: list[tuple[int, int]]) -> Outcome:
        targets = sorted(self.cfg.target_lengths)
        self._target_turn += 1
        order = targets[self._target_turn % len(targets) :] + targets[: self._target_turn % len(targets)]
        if cand.task == TaskType.MULTI_SEGMENT:
            order = targets  # the smallest context that holds every segment: they stay spread over it
        question, answer = qa.question.strip(), qa.answer.strip()
        for target in order:  # the scheduled target first, then any other that fits the evidence
            built = self.assembler.assemble(cand.doc_id, spans, question, answer, target, self._pick_depth)
            if built is not None and built.n_tokens <= target:
                self.depth_counts[
                    min(self.cfg.depth_bins - 1, int(built.depth_pct / 100 * self.cfg.depth_bins))
                ] += 1
                break
        else:
            return self._reject(
                cand, RejectReason.TOO_LONG, f"evidence does not fit any of {targets}", qa.model_dump_json()
            )
        return self._record_built(cand, question, answer, built, target, built.assembly)

    def _record_built(self, cand, question, answer, built, target, assembly) -> QARecord:
        """A record from an assembled context (its text, segments, evidence, depth, documents, size)."""
        return self._record(
            cand, question, answer, built.context, built.segments, built.evidence, built.depth_pct,
            assembly, built.doc_ids, target, built.n_tokens,
        )  # fmt: skip

    def _record(
        self, cand, question, answer, context, segments, evidence, depth, assembly, doc_ids, target, n_tokens
    ) -> QARecord:
        chunk_ids = [c.chunk_id for c in cand.chunks]
        assert self.teacher is not None
        return QARecord(
            qa_id=make_id("qa", self.version, cand.task.value, chunk_ids, question, target),
            task_type=cand.task,
            question=question,
            answer=answer,
            context=context,
            context_segments=segments,
            evidence=evidence,
            evidence_depth_pct=depth,
            assembly=assembly,
            doc_ids=doc_ids,
            source_chunk_ids=chunk_ids,
            teacher_backend=self.teacher.backend,
            teacher_model=self.teacher.model,
            prompt_version=self.version,
            target_tokens=target,
            n_tokens=n_tokens,
            answer_tokens=self.fmt.count(answer),
            seed=self.cfg.seed,
        )

    def _pick_depth(self, lo: float, hi: float) -> float:
        """A depth in ``[lo, hi]`` from the least-filled depth bin so far (balances a build's bins)."""
        n = self.cfg.depth_bins
        bins = [b for b in range(n) if b / n <= hi and (b + 1) / n >= lo] or [min(n - 1, int(lo * n))]
        low = min(self.depth_counts[b] for b in bins)
        b = self._depth_rng.choice([b for b in bins if self.depth_counts[b] == low])
        a, z = max(lo, b / n), min(hi, (b + 1) / n)
        return a + (z - a) * self._depth_rng.random() if z > a else min(max(lo, a), hi)

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
            raw=redact(raw[:2000]) if raw else None,
        )
