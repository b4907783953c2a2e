"""Assemble a context from document slices and inserted texts, tracking where everything lands."""

from __future__ import annotations

from dataclasses import dataclass, field

from data_contracts import ContextSegment, EvidenceSpan


@dataclass
class Part:
    """A piece of the context: a slice of a document, or an inserted text (needle, separator)."""

    text: str
    doc_id: str | None = None
    doc_start: int = 0
    evidence: bool = False


@dataclass
class ContextBuilder:
    """Ordered parts of a context; renders the string, its provenance and its evidence spans."""

    parts: list[Part] = field(default_factory=list)

    def add(self, text: str, doc_id: str | None = None, doc_start: int = 0, evidence: bool = False) -> None:
        """Append a part (empty texts are skipped)."""
        if text:
            self.parts.append(Part(text, doc_id, doc_start, evidence))

    @property
    def text(self) -> str:
        """The rendered context."""
        return "".join(p.text for p in self.parts)

    def insert(self, offset: int, text: str, evidence: bool = True) -> None:
        """Insert ``text`` at character ``offset`` of the rendered context, splitting a part if needed."""
        pos = 0
        for i, part in enumerate(self.parts):
            end = pos + len(part.text)
            if offset <= end:
                cut = offset - pos
                left = Part(part.text[:cut], part.doc_id, part.doc_start, part.evidence)
                right = Part(part.text[cut:], part.doc_id, part.doc_start + cut, part.evidence)
                new = [p for p in (left, Part(text, evidence=evidence), right) if p.text]
                self.parts[i : i + 1] = new
                return
            pos = end
        self.parts.append(Part(text, evidence=evidence))

    def segments(self) -> list[ContextSegment]:
        """Where each document slice sits in the context."""
        out, pos = [], 0
        for p in self.parts:
            if p.doc_id is not None:
                out.append(
                    ContextSegment(
                        doc_id=p.doc_id,
                        doc_start=p.doc_start,
                        doc_end=p.doc_start + len(p.text),
                        context_start=pos,
                    )
                )
            pos += len(p.text)
        return out

    def evidence_spans(self) -> list[EvidenceSpan]:
        """The inserted evidence texts, located in the context."""
        out, pos = [], 0
        for p in self.parts:
            if p.evidence:
                out.append(
                    EvidenceSpan(
                        quote=p.text, context_start=pos, context_end=pos + len(p.text), doc_id=p.doc_id
                    )
                )
            pos += len(p.text)
        return out

    def doc_ids(self) -> list[str]:
        """Documents used, in order of first appearance."""
        return list(dict.fromkeys(p.doc_id for p in self.parts if p.doc_id is not None))
