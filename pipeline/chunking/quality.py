"""Chunk quality summary: sizes, spread and budget violations."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from data_contracts import Chunk


@dataclass(frozen=True)
class ChunkStats:
    """Size statistics of a set of chunks (in the chunker's tokens)."""

    docs: int
    chunks: int
    mean_tokens: float
    p50_tokens: float
    p95_tokens: float
    max_tokens: int
    min_tokens: int
    over_limit: int
    limit: int

    @property
    def fill(self) -> float:
        """Mean chunk size as a share of the limit."""
        return self.mean_tokens / self.limit if self.limit else 0.0

    @property
    def spread(self) -> float:
        """p95 / mean: 1.0 means perfectly even chunks."""
        return self.p95_tokens / self.mean_tokens if self.mean_tokens else 0.0

    def line(self) -> str:
        """One-line summary for CLIs and logs."""
        return (
            f"{self.docs} docs -> {self.chunks} chunks; tokens mean {self.mean_tokens:.0f}, "
            f"p50 {self.p50_tokens:.0f}, "
            f"p95 {self.p95_tokens:.0f}, max {self.max_tokens} (limit {self.limit}, fill {self.fill:.2f}, "
            f"p95/mean {self.spread:.2f}); violations = {self.over_limit}"
        )


def summarize(chunks: Iterable[Chunk], limit: int) -> ChunkStats:
    """Summarise ``chunks`` against the token ``limit``."""
    chunks = list(chunks)
    counts = np.array([c.token_count for c in chunks]) if chunks else np.zeros(1)
    return ChunkStats(
        docs=len({c.doc_id for c in chunks}),
        chunks=len(chunks),
        mean_tokens=float(counts.mean()),
        p50_tokens=float(np.percentile(counts, 50)),
        p95_tokens=float(np.percentile(counts, 95)),
        max_tokens=int(counts.max()),
        min_tokens=int(counts.min()),
        over_limit=int((counts > limit).sum()),
        limit=limit,
    )
