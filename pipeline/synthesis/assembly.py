"""Build the training context for a grounded QA pair at a target length in student tokens.

* the whole document when it fills most of the budget;
* a window of the document around the evidence when the document is longer than the budget;
* the evidence document among distractor documents when it is much shorter.

The evidence is placed at a requested depth (0-100% of the context) as far as the document
allows; the recorded depth is measured in student tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_contracts import Assembly, ContextSegment, EvidenceSpan, SourceDocument
from pipeline.chat import ChatFormatter
from pipeline.synthesis.context import ContextBuilder

_SEP = "\n\n"
DOC_SEPARATOR = "\n\n----------\n"


@dataclass
class Assembled:
    """A context with its provenance, evidence spans and measured lengths."""

    context: str
    assembly: Assembly
    segments: list[ContextSegment]
    evidence: list[EvidenceSpan]
    doc_ids: list[str]
    depth_pct: float
    n_tokens: int


class Assembler:
    """Assembles contexts for QA pairs over a fixed set of documents."""

    def __init__(
        self, docs: Sequence[SourceDocument], formatter: ChatFormatter, whole_doc_fill: float = 0.75
    ):
        self.docs = {d.doc_id: d for d in docs}
        self.order = sorted(self.docs)
        self.fmt = formatter
        self.whole_doc_fill = whole_doc_fill
        self._offsets: dict[str, np.ndarray] = {}

    def doc_token_starts(self, doc_id: str) -> np.ndarray:
        """Character offset where each token of the document starts (cached)."""
        if doc_id not in self._offsets:
            enc = self.fmt.hf.backend_tokenizer.encode(self.docs[doc_id].text, add_special_tokens=False)
            self._offsets[doc_id] = np.array([s for s, _ in enc.offsets] + [len(self.docs[doc_id].text)])
        return self._offsets[doc_id]

    def assemble(
        self,
        doc_id: str,
        spans: list[tuple[int, int]],
        question: str,
        answer: str,
        target: int,
        depth: float | Callable[[float, float], float],
    ) -> Assembled | None:
        """Context for evidence ``spans`` (document char spans) at ``target`` tokens.

        ``depth`` is where the evidence should start (0-1 of the context), or a function that picks
        one from the feasible range ``(lo, hi)`` (how a build balances its depth bins). Returns
        ``None`` when the evidence itself does not fit the target.
        """
        budget = target - self.fmt.count_example("", question, answer) - 8
        starts = self.doc_token_starts(doc_id)
        n_doc = len(starts) - 1
        if budget <= 0:
            return None
        pick = depth if callable(depth) else (lambda lo, hi, d=depth: min(max(d, lo), hi))
        e0 = int(np.searchsorted(starts, min(s for s, _ in spans), side="right")) - 1
        if n_doc <= budget:
            if n_doc >= self.whole_doc_fill * budget or len(self.docs) == 1:
                pick(e0 / max(1, n_doc), e0 / max(1, n_doc))  # fixed by the document: counted, not chosen
                ctx = ContextBuilder()
                ctx.add(self.docs[doc_id].text, doc_id, 0)
                return self._finish(ctx, doc_id, spans, question, answer, Assembly.WHOLE_DOCUMENT)
            return self._with_distractors(doc_id, spans, question, answer, budget, pick, n_doc, e0)
        return self._window(doc_id, spans, question, answer, budget, pick, starts)

    def _window(self, doc_id, spans, question, answer, budget, pick, starts) -> Assembled | None:
        text = self.docs[doc_id].text
        ev0, ev1 = min(s for s, _ in spans), max(e for _, e in spans)
        t0 = int(np.searchsorted(starts, ev0, side="right")) - 1
        t1 = int(np.searchsorted(starts, ev1, side="left"))
        if t1 - t0 > budget:
            return None
        n_doc = len(starts) - 1
        lo_min, lo_max = max(0, t1 - budget), min(t0, n_doc - budget)  # window starts that keep the evidence
        d = pick((t0 - lo_max) / budget, (t0 - lo_min) / budget)
        lo = min(max(int(round(t0 - d * budget)), lo_min), lo_max)
        a, b = int(starts[lo]), int(starts[min(lo + budget, n_doc)])
        a = _line_start(text, a, ev0)
        ctx = ContextBuilder()
        ctx.add(text[a:b], doc_id, a)
        return self._finish(ctx, doc_id, spans, question, answer, Assembly.WINDOW)

    def _with_distractors(self, doc_id, spans, question, answer, budget, pick, n_doc, e0) -> Assembled | None:
        """Distractor documents before and after the evidence document, sized to hit the depth.

        Each document starts with a visible separator and its title; distractors are cut at a
        paragraph or sentence end.
        """
        others = [d for d in self.order if d != doc_id]
        k = self.order.index(doc_id)
        others = others[k:] + others[:k]  # deterministic, varies by document
        head = self.fmt.count(self._header(doc_id))
        room = budget - n_doc - head - 8 * (len(others) + 1)
        if room <= 0:
            ctx = ContextBuilder()
            ctx.add(self.docs[doc_id].text, doc_id, 0)
            return self._finish(ctx, doc_id, spans, question, answer, Assembly.WHOLE_DOCUMENT)
        total = n_doc + head + room
        d = pick((head + e0) / total, (room + head + e0) / total)
        # Fill after the document first, then size what goes before on what really came after
        # (distractors end at a boundary, so they can come out shorter than asked).
        # After-documents come from the end of the list, before-documents from its start.
        after, used_after = self._fill(others[::-1], room - min(room, max(0, int(d * total) - head - e0)))
        want_before = (d * (n_doc + head + used_after) - head - e0) / max(1e-6, 1 - d)
        rest = others[: len(others) - len(after)]
        before, _ = self._fill(rest, int(min(room - used_after, max(0.0, want_before))))
        ctx = ContextBuilder()
        for other, end in before:
            self._add_doc(ctx, other, end)
        self._add_doc(ctx, doc_id, len(self.docs[doc_id].text))
        for other, end in after:
            self._add_doc(ctx, other, end)
        return self._finish(ctx, doc_id, spans, question, answer, Assembly.DISTRACTORS)

    def assemble_documents(
        self, parts: list[tuple[str, list[tuple[int, int]]]], question: str, answer: str, target: int
    ) -> Assembled | None:
        """Several documents, titled ``Document [1]: ...`` in the given order (citations refer to it).

        Each document is whole if its share of the budget holds it, else a window around its evidence.
        """
        budget = target - self.fmt.count_example("", question, answer) - 8 - 16 * len(parts)
        if budget <= 0:
            return None
        share = budget // len(parts)
        ctx = ContextBuilder()
        for i, (doc_id, spans) in enumerate(parts, 1):
            text, starts = self.docs[doc_id].text, self.doc_token_starts(doc_id)
            n_doc = len(starts) - 1
            a, b = 0, len(text)
            if n_doc > share:
                t0 = int(np.searchsorted(starts, min(s for s, _ in spans), side="right")) - 1
                t1 = int(np.searchsorted(starts, max(e for _, e in spans), side="left"))
                if t1 - t0 > share:
                    return None
                lo = min(max(0, (t0 + t1) // 2 - share // 2), t0, n_doc - share)
                a, b = _line_start(text, int(starts[lo]), min(s for s, _ in spans)), int(starts[lo + share])
            if ctx.parts:
                ctx.add(_SEP)
            title = self.docs[doc_id].title or Path(self.docs[doc_id].source).name or doc_id
            ctx.add(f"Document [{i}]: {title}\n\n")
            ctx.add(text[a:b], doc_id, a)
        flat = [(doc_id, s, e) for doc_id, spans in parts for s, e in spans]
        return self._finish(ctx, parts[0][0], flat, question, answer, Assembly.DISTRACTORS)

    def _header(self, doc_id: str) -> str:
        doc = self.docs[doc_id]
        title = doc.title or Path(doc.source).name or doc_id
        return f"{DOC_SEPARATOR}Document: {title}\n\n"

    def _add_doc(self, ctx: ContextBuilder, doc_id: str, end: int) -> None:
        if ctx.parts:
            ctx.add(_SEP)
        ctx.add(self._header(doc_id).lstrip("\n"))
        ctx.add(self.docs[doc_id].text[:end], doc_id, 0)

    def _fill(self, others: list[str], tokens: int) -> tuple[list[tuple[str, int]], int]:
        """Openings of ``others`` (char ends at a boundary) adding up to about ``tokens`` tokens."""
        out, used = [], 0
        for other in others:
            left = tokens - used - self.fmt.count(self._header(other)) - 2
            if left < 24:
                break
            ostarts = self.doc_token_starts(other)
            take = min(len(ostarts) - 1, left)
            end = _boundary_before(self.docs[other].text, int(ostarts[take]))
            n = int(np.searchsorted(ostarts, end, side="left"))
            if n < 8:
                break
            out.append((other, end))
            used += n + (tokens - used - left)
            if take < len(ostarts) - 1:  # this one was cut: the budget is spent
                break
        return out, used

    def _finish(self, ctx: ContextBuilder, doc_id: str, spans, question, answer, kind) -> Assembled | None:
        """Locate the evidence ``spans`` (document char spans, or ``(doc_id, start, end)``) in the context."""
        text = ctx.text
        segments = ctx.segments()
        evidence = []
        for span in spans:
            doc_id, s, e = span if len(span) == 3 else (doc_id, *span)
            seg = next(
                (g for g in segments if g.doc_id == doc_id and g.doc_start <= s and e <= g.doc_end), None
            )
            if seg is None:
                return None
            c0 = seg.context_start + (s - seg.doc_start)
            evidence.append(
                EvidenceSpan(
                    quote=text[c0 : c0 + (e - s)], context_start=c0, context_end=c0 + e - s, doc_id=doc_id
                )
            )
        n = self.fmt.count_example(text, question, answer)
        first = min(ev.context_start for ev in evidence)
        depth = 100.0 * self.fmt.count(text[:first]) / max(1, self.fmt.count(text))
        return Assembled(text, kind, segments, evidence, ctx.doc_ids(), round(min(depth, 100.0), 2), n)


def _line_start(text: str, a: int, limit: int) -> int:
    """Move a window start forward to the next line start if that stays before ``limit``."""
    if a == 0 or text[a - 1] == "\n":
        return a
    nl = text.find("\n", a, limit)
    return nl + 1 if nl >= 0 else a


def _boundary_before(text: str, at: int) -> int:
    """The last paragraph end before ``at`` (if it keeps most of the text), else sentence or line end."""
    if at >= len(text):
        return len(text)
    para = text.rfind("\n\n", 0, at)
    if para > 0.9 * at:
        return para
    best = max(text.rfind(". ", 0, at) + 1, text.rfind("\n", 0, at))
    return best if best > 0.6 * at else at
