"""Build the training context for a grounded QA pair at a target length in student tokens.

* the whole document when it fills most of the budget;
* a window of the document around the evidence when the document is longer than the budget;
* the evidence document among distractor documents when it is much shorter.

The evidence is placed at a requested depth (0-100% of the context) as far as the document
allows; the recorded depth is measured in student tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from data_contracts import Assembly, ContextSegment, EvidenceSpan, SourceDocument
from pipeline.chat import ChatFormatter
from pipeline.synthesis.context import ContextBuilder

_SEP = "\n\n"


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
        self, doc_id: str, spans: list[tuple[int, int]], question: str, answer: str, target: int, depth: float
    ) -> Assembled | None:
        """Context for evidence ``spans`` (document char spans) at ``target`` tokens.

        Returns ``None`` when the evidence itself does not fit the target.
        """
        budget = target - self.fmt.count_example("", question, answer) - 8
        starts = self.doc_token_starts(doc_id)
        n_doc = len(starts) - 1
        if budget <= 0:
            return None
        if n_doc <= budget:
            if n_doc >= self.whole_doc_fill * budget or len(self.docs) == 1:
                ctx = ContextBuilder()
                ctx.add(self.docs[doc_id].text, doc_id, 0)
                return self._finish(ctx, doc_id, spans, question, answer, Assembly.WHOLE_DOCUMENT)
            return self._with_distractors(doc_id, spans, question, answer, budget, depth, n_doc)
        return self._window(doc_id, spans, question, answer, budget, depth, starts)

    def _window(self, doc_id, spans, question, answer, budget, depth, starts) -> Assembled | None:
        text = self.docs[doc_id].text
        ev0, ev1 = min(s for s, _ in spans), max(e for _, e in spans)
        t0 = int(np.searchsorted(starts, ev0, side="right")) - 1
        t1 = int(np.searchsorted(starts, ev1, side="left"))
        if t1 - t0 > budget:
            return None
        n_doc = len(starts) - 1
        lo = max(0, min(t0 - int(depth * budget), n_doc - budget))  # evidence at `depth` where possible
        lo = max(0, min(lo, t0, n_doc - budget))
        hi = lo + budget
        a, b = int(starts[lo]), int(starts[min(hi, n_doc)])
        a = _line_start(text, a, ev0)
        ctx = ContextBuilder()
        ctx.add(text[a:b], doc_id, a)
        result = self._finish(ctx, doc_id, spans, question, answer, Assembly.WINDOW)
        return result

    def _with_distractors(self, doc_id, spans, question, answer, budget, depth, n_doc) -> Assembled | None:
        others = [d for d in self.order if d != doc_id]
        k = self.order.index(doc_id)
        others = others[k:] + others[:k]  # deterministic, varies by document
        before_budget = int(depth * (budget - n_doc))
        ctx = ContextBuilder()
        used = 0
        fills: list[tuple[str, int]] = []
        for other in others:  # distractor text, split before/after the evidence document
            if used >= budget - n_doc:
                break
            ostarts = self.doc_token_starts(other)
            take = min(len(ostarts) - 1, budget - n_doc - used - 4)
            if take <= 16:
                break
            fills.append((other, take))
            used += take + 2
        before, after, acc = [], [], 0
        for other, take in fills:
            (before if acc < before_budget else after).append((other, take))
            acc += take
        for other, take in before:
            ctx.add(self.docs[other].text[: int(self.doc_token_starts(other)[take])], other, 0)
            ctx.add(_SEP)
        ctx.add(self.docs[doc_id].text, doc_id, 0)
        for other, take in after:
            ctx.add(_SEP)
            ctx.add(self.docs[other].text[: int(self.doc_token_starts(other)[take])], other, 0)
        return self._finish(ctx, doc_id, spans, question, answer, Assembly.DISTRACTORS)

    def _finish(self, ctx: ContextBuilder, doc_id: str, spans, question, answer, kind) -> Assembled | None:
        text = ctx.text
        segments = ctx.segments()
        evidence = []
        for s, e in spans:
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
