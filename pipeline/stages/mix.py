"""The data mix of a tokenized build: which kinds of records, how many tokens of each, per bucket.

Kinds: ``qa`` (per-chunk and teacher-free QA), ``doc_task`` (document-level QA), ``lm`` (long
document text with loss on every token), ``replay`` (short instruction data) and ``chat``
(imported conversations). Shares are shares of *tokens* (rendered sequence length, what a batch
costs), not of rows:

* LM: ``lm tokens / (qa + doc_task + lm tokens)`` is brought to ``lm.share`` in every bucket;
* replay: ``replay tokens / all tokens`` is at most ``replay.share`` over the whole build.

Records are picked in a seeded hash order, so the same inputs always give the same pick. When a
source is too small for its share, the achieved share is reported and a warning logged; nothing
is invented to fill the gap.
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from data_contracts import (
    Conversation,
    LMRecord,
    MixCount,
    QARecord,
    TaskType,
    content_hash,
    resolve_in,
)
from data_contracts.io import read_table
from pipeline.validate import load_manifest

log = logging.getLogger(__name__)

KINDS = ("qa", "doc_task", "lm", "replay", "chat")
QA_KINDS = ("qa", "doc_task")
DOC_TASKS = frozenset({TaskType.DOC_SUMMARY, TaskType.MULTI_SEGMENT, TaskType.MULTI_DOC})
REPLAY_TASK = "replay"
#: A share this far below the request counts as missed (one record more or less is rounding).
SHORT_BY = 0.02


def kind_of(rec: QARecord | Conversation | LMRecord) -> str:
    """Which kind of the mix a record belongs to."""
    if isinstance(rec, LMRecord):
        return "lm"
    if isinstance(rec, Conversation):
        return "replay" if rec.task_type == REPLAY_TASK else "chat"
    return "doc_task" if rec.task_type in DOC_TASKS else "qa"


def pick_order(seed: int, key: str) -> str:
    """Position of a record in the seeded pick order (a hash: deterministic, not the listing order)."""
    return content_hash(seed, key)


@dataclass
class _Cell:
    rows: int = 0
    tokens: int = 0
    loss_tokens: int = 0


@dataclass
class MixTally:
    """Rows and tokens per (bucket, kind) as records are placed."""

    cells: dict[tuple[int, str], _Cell] = field(default_factory=lambda: defaultdict(_Cell))

    def add(self, bucket: int, kind: str, length: int, loss_tokens: int) -> None:
        """Count one placed row."""
        c = self.cells[(bucket, kind)]
        c.rows, c.tokens, c.loss_tokens = c.rows + 1, c.tokens + length, c.loss_tokens + loss_tokens

    def tokens(self, bucket: int | None = None, kinds: Iterable[str] = KINDS) -> int:
        """Tokens of these kinds, in one bucket or (``None``) in all."""
        kinds = set(kinds)
        return sum(c.tokens for (b, k), c in self.cells.items() if k in kinds and bucket in (None, b))

    def rows_for(self, bucket: int) -> list[MixCount]:
        """The mix rows of one bucket, in kind order (only kinds present)."""
        return [
            MixCount(kind=k, rows=c.rows, tokens=c.tokens, loss_tokens=c.loss_tokens)
            for k in KINDS
            if (c := self.cells.get((bucket, k))) and c.rows
        ]


def lm_share(qa_tokens: int, lm_tokens: int) -> float:
    """Achieved LM share: lm / (qa + lm) tokens (0 when there are none)."""
    total = qa_tokens + lm_tokens
    return lm_tokens / total if total else 0.0


@dataclass(frozen=True)
class LMCandidate:
    """What the pick needs of an LM record: its ID, split key and rendered length."""

    lm_id: str
    doc_id: str
    length: int


def lm_candidates(lm_dirs: Sequence[str | Path]) -> Iterator[LMCandidate]:
    """Every LM record of the folders, read from three columns only (no text in memory)."""
    for d in lm_dirs:
        for s in load_manifest(d).shards:
            if s.contract != LMRecord.CONTRACT:
                continue
            t = read_table(resolve_in(d, s.path)).select(["lm_id", "doc_id", "token_count", "ends_document"])
            lengths = t["token_count"].to_numpy() + pc.cast(t["ends_document"], "int64").to_numpy()
            for lm_id, doc_id, n in zip(
                t["lm_id"].to_pylist(), t["doc_id"].to_pylist(), lengths, strict=True
            ):
                yield LMCandidate(lm_id, doc_id, int(n))


@dataclass(frozen=True)
class LMPick:
    """The picked LM record IDs, the LM tokens available per bucket, and the buckets that ran out."""

    picked: frozenset[str]
    available: dict[int, int]
    exhausted: frozenset[int]


def pick_lm(
    candidates: Iterable[LMCandidate],
    qa_tokens: dict[int, int],
    edges: Sequence[int],
    share: float,
    seed: int,
) -> LMPick:
    """Pick LM records so that in each bucket lm / (qa + lm) tokens comes closest to ``share``.

    ``qa_tokens``: QA tokens already placed per bucket. Candidates are visited in the seeded hash
    order; one is taken when it brings its bucket's LM tokens closer to the target (``share == 1``:
    every candidate). Records are whole, so a bucket ends within half a record of its target unless
    its candidates run out (``exhausted``).
    """
    by_bucket: dict[int, list[LMCandidate]] = defaultdict(list)
    for c in candidates:
        k = bisect.bisect_left(edges, c.length)
        if k < len(edges):
            by_bucket[edges[k]].append(c)
    targets = {e: (np.inf if share >= 1 else share / (1 - share) * qa_tokens.get(e, 0)) for e in edges}
    picked: set[str] = set()
    exhausted = set()
    for edge in edges:
        have, cands = 0, sorted(by_bucket.get(edge, []), key=lambda c: pick_order(seed, c.lm_id))
        for c in cands:
            if have + c.length / 2 < targets[edge]:  # taking it gets closer to the target
                picked.add(c.lm_id)
                have += c.length
        if have + (cands[-1].length / 2 if cands else 0) < targets[edge] and all(
            c.lm_id in picked for c in cands
        ):
            exhausted.add(edge)
    available = {e: sum(c.length for c in cands) for e, cands in by_bucket.items()}
    return LMPick(frozenset(picked), available, frozenset(exhausted))


def replay_budget(other_tokens: int, share: float) -> int:
    """Replay tokens allowed so that replay / (other + replay) <= ``share``."""
    return int(share / (1 - share) * other_tokens)


@dataclass
class MixReport:
    """Requested and achieved shares, for the log and the dataset card."""

    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def lm(self, tally: MixTally, edges: Sequence[int], share: float, pick: LMPick) -> None:
        """Per bucket: requested vs achieved LM share; a warning where the documents ran out."""
        for e in edges:
            qa, lm = tally.tokens(e, QA_KINDS), tally.tokens(e, ["lm"])
            if not qa and not lm:
                continue
            got = lm_share(qa, lm)
            self.lines.append(
                f"bucket <= {e}: LM share {got:.1%} of QA+LM tokens (requested {share:.0%}; "
                f"{pick.available.get(e, 0)} LM tokens available)"
            )
            if got < share - SHORT_BY and e in pick.exhausted:
                self.warnings.append(
                    f"bucket <= {e}: LM share {got:.1%} < requested {share:.0%}: the documents give only "
                    f"{pick.available.get(e, 0)} LM tokens at this length; add documents or lower lm.share"
                )
        total_qa, total_lm = tally.tokens(None, QA_KINDS), tally.tokens(None, ["lm"])
        self.lines.append(f"all buckets: LM share {lm_share(total_qa, total_lm):.1%} of QA+LM tokens")

    def replay(self, tally: MixTally, share: float, available: int | None) -> None:
        """Replay share of all tokens; a warning when the source is too small for it.

        ``available``: tokens of the whole replay source, or ``None`` when it was not read to the end
        (the budget filled up first).
        """
        total, replay = tally.tokens(), tally.tokens(None, ["replay"])
        got = replay / total if total else 0.0
        source = "source larger than the cap" if available is None else f"{available} replay tokens available"
        self.lines.append(f"replay share {got:.1%} of all tokens (cap {share:.0%}; {source})")
        if available is not None and got < share - SHORT_BY:
            self.warnings.append(
                f"replay share {got:.1%} < requested {share:.0%}: the replay source has only {available} "
                "tokens (after the held-out split); add rows or lower replay.share"
            )

    def emit(self) -> None:
        """Log the report (warnings as warnings)."""
        for line in self.lines:
            log.info("mix: %s", line)
        for w in self.warnings:
            log.warning("mix: %s", w)


__all__ = [
    "DOC_TASKS",
    "KINDS",
    "LMCandidate",
    "LMPick",
    "MixReport",
    "MixTally",
    "kind_of",
    "lm_candidates",
    "lm_share",
    "pick_lm",
    "pick_order",
    "replay_budget",
]
