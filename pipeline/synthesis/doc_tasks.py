"""Document-level tasks beside the per-chunk ones.

* whole-document summary: map (one summary per chunk, each graded against its chunk), reduce
  (one summary of the section summaries), graded against the section summaries it was made from;
* multi-segment questions (IN2-style): the teacher reads >= 3 chunks spread over a span that fits
  the largest target and must quote evidence from every one of them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from data_contracts import Chunk, SourceDocument
from pipeline.synthesis import grounding, prompts
from pipeline.synthesis.parse import TeacherQA, parse_reply
from pipeline.synthesis.teachers import ChatRequest, ChatResponse, TeacherError


def map_requests(chunks: Sequence[Chunk], version: str, seed: int, max_tokens: int) -> list[ChatRequest]:
    """One summary request per chunk, in document order."""
    return [
        ChatRequest(
            (("user", prompts.render("chunk_summary", version, index=i + 1, chunk=c.text)),),
            max_tokens=max_tokens,
            temperature=0.0,
            seed=seed,
        )
        for i, c in enumerate(chunks)
    ]


@dataclass(frozen=True)
class MapResult:
    """The section summaries that passed, and why the others did not."""

    summaries: list[str]
    failures: list[str]


def grade_map(
    chunks: Sequence[Chunk], replies: Sequence[ChatResponse | TeacherError], need: float
) -> MapResult:
    """Keep each section summary that parses, is not cut, and is supported by its own chunk."""
    kept, failures = [], []
    for i, (chunk, reply) in enumerate(zip(chunks, replies, strict=True)):
        if isinstance(reply, TeacherError):
            failures.append(f"section {i + 1}: teacher error")
            continue
        if reply.finish_reason == "length":
            failures.append(f"section {i + 1}: truncated")
            continue
        summary = _summary_field(reply.text)
        if not summary or grounding.is_refusal(summary):
            failures.append(f"section {i + 1}: no summary")
            continue
        score = grounding.support(summary, chunk.text)
        if score < need:
            failures.append(f"section {i + 1}: support {score:.2f}")
            continue
        kept.append(summary)
    return MapResult(kept, failures)


def _summary_field(text: str) -> str | None:
    try:
        data = json.loads(text[text.find("{") : text.rfind("}") + 1])
        value = data.get("summary") if isinstance(data, dict) else None
        return value.strip() if isinstance(value, str) else None
    except ValueError:
        return None


def reduce_request(doc: SourceDocument, summaries: list[str], version: str, seed: int, max_tokens: int):
    """The request that turns section summaries into one request + whole-document summary."""
    title = doc.title or doc.source.rsplit("/", 1)[-1]
    text = prompts.render("doc_summary", version, title=title, summaries=summaries)
    return ChatRequest((("user", text),), max_tokens=max_tokens, temperature=0.0, seed=seed)


def parse_reduce(reply: ChatResponse) -> TeacherQA | None:
    """The reduce reply as a QA (no evidence quotes: the whole document is the evidence)."""
    return parse_reply(reply.text)


def spread(chunks: Sequence[Chunk], n: int, span_tokens: int, offset: int) -> tuple[Chunk, ...] | None:
    """``n`` chunks spread evenly over a run of chunks of at most ``span_tokens`` tokens.

    ``offset`` moves the run through the document (so several questions per document differ).
    """
    if len(chunks) < n:
        return None
    total = [0]
    for c in chunks:
        total.append(total[-1] + c.token_count)
    starts = list(range(len(chunks)))
    best = None
    for first in starts[offset % len(starts) :] + starts[: offset % len(starts)]:
        last = first
        while last + 1 < len(chunks) and total[last + 2] - total[first] <= span_tokens:
            last += 1
        if last - first + 1 >= n:
            best = (first, last)
            break
    if best is None:
        return None
    first, last = best
    idx = sorted({first + round(k * (last - first) / (n - 1)) for k in range(n)})
    return tuple(chunks[i] for i in idx) if len(idx) == n else None
