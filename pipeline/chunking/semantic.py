"""SemanticChunker: cut where the topic changes, within hard token limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from data_contracts import Chunk, SourceDocument
from pipeline.chunking import boundaries as bd
from pipeline.chunking.base import BaseChunker, Plan
from pipeline.chunking.embedders import Embedder, SentenceTransformerEmbedder
from pipeline.chunking.planner import plan_cuts
from pipeline.chunking.recursive import RecursiveChunker
from pipeline.errors import ConfigError
from pipeline.tokenizer import TokenizerLike

THRESHOLDS = {"percentile": 90.0, "stddev": 1.25, "interquartile": 1.5, "gradient": 90.0}


@dataclass
class _Doc:
    """A document cut into sentence-level pieces and grouped into embedding units."""

    text: str
    ix: bd.TextIndex
    edges: np.ndarray
    levels: np.ndarray
    counts: np.ndarray
    headings: list[bd.Heading]
    units: list[int]  # piece-boundary indices where units start, plus the last boundary

    def unit_texts(self) -> list[str]:
        e = self.edges
        return [self.text[e[a] : e[b]] for a, b in zip(self.units, self.units[1:], strict=False)]


class SemanticChunker(BaseChunker):
    """Cut at drops in similarity between neighbouring sentences, then enforce the token limits.

    Sentences (and lines, for text without sentence punctuation) are grouped into units of at
    least ``min_unit_tokens`` tokens (default: max_tokens/8, in [16, 64]); each unit is embedded
    once, in batches (across documents in :meth:`chunk_batch`). The distance between unit ``i``
    and ``i+1`` compares the mean embedding of the ``window`` units on each side. Breakpoints are
    distances above a threshold:

    * ``percentile``: above the ``amount``-th percentile (default 90);
    * ``stddev``: above mean + ``amount`` standard deviations (default 1.25);
    * ``interquartile``: above Q3 + ``amount`` * IQR (default 1.5);
    * ``gradient``: where the distance's gradient is above its ``amount``-th percentile (default 90).

    Segments over ``max_tokens`` are split further at structural boundaries (as the recursive
    chunker would); segments under ``min_tokens`` are merged into their more similar neighbour.
    Like the recursive chunker, chunks tile the document exactly.

    Args:
        embedder: any :class:`Embedder`; default: the packaged all-MiniLM-L6-v2 through
            sentence-transformers (a model2vec folder works too).

    """

    name = "semantic"

    def __init__(
        self,
        *,
        tokenizer: TokenizerLike = None,
        max_tokens: int = 512,
        min_tokens: int | None = None,
        embedder: Embedder | None = None,
        threshold: str = "percentile",
        threshold_amount: float | None = None,
        window: int = 2,
        min_unit_tokens: int | None = None,
    ):
        super().__init__(tokenizer=tokenizer, max_tokens=max_tokens, min_tokens=min_tokens)
        problems = []
        if threshold not in THRESHOLDS:
            problems.append(f"threshold must be one of {', '.join(THRESHOLDS)}, got {threshold!r}")
        if window < 1:
            problems.append(f"window must be >= 1, got {window}")
        if embedder is not None and not isinstance(embedder, Embedder):
            problems.append("embedder must have a `name` and an `encode(list[str]) -> ndarray` method")
        if problems:
            raise ConfigError(problems, source="SemanticChunker")
        self.embedder: Embedder = embedder or SentenceTransformerEmbedder()
        self.threshold = threshold
        self.threshold_amount = THRESHOLDS[threshold] if threshold_amount is None else float(threshold_amount)
        self.window = window
        # Units of ~1/8 of the budget: coarse enough to keep embedding cheap (the whole cost of
        # semantic chunking), fine enough to place cuts; measured on topic mixes of the corpus.
        self.min_unit_tokens = min_unit_tokens or min(64, max(16, self.max_tokens // 8))
        self._structure = RecursiveChunker(
            tokenizer=self.tokenizer, max_tokens=self.max_tokens, min_tokens=self.min_tokens
        )

    def config(self) -> dict[str, Any]:
        """Settings that determine the output."""
        return {
            **super().config(),
            "embedder": self.embedder.name,
            "threshold": self.threshold,
            "threshold_amount": self.threshold_amount,
            "window": self.window,
            "min_unit_tokens": self.min_unit_tokens,
        }

    # -- planning --------------------------------------------------------------------------------
    def _plan(self, text: str, fmt: str | None, initial_path: list[str]) -> Plan:
        doc = self._prepare(text, fmt)
        return self._segment(doc, self.embedder.encode(doc.unit_texts()), initial_path)

    def chunk_batch(
        self, docs: Sequence[SourceDocument | str], *, workers: int | None = None
    ) -> list[list[Chunk]]:
        """Chunk many documents, embedding all their units in one batched pass."""
        docs = [
            d if isinstance(d, SourceDocument) else SourceDocument.from_text(d, "<str>", "txt") for d in docs
        ]
        prepared = [self._prepare(d.text, d.format) if d.text else None for d in docs]
        texts = [t for p in prepared if p for t in p.unit_texts()]
        emb = self.embedder.encode(texts)
        out, k = [], 0
        for d, p in zip(docs, prepared, strict=True):
            if p is None:
                out.append([])
                continue
            n = len(p.units) - 1
            plan = self._segment(p, emb[k : k + n], [])
            k += n
            out.append(self._to_chunks(d.text, plan, d.doc_id, 0, 0, 0))
        return out

    def _prepare(self, text: str, fmt: str | None) -> _Doc:
        pos, lev, headings, ix = bd.structural_cuts(text, fmt)
        edges, levels, counts = self._structure._pieces(text, ix, pos, lev)
        return _Doc(text, ix, edges, levels, counts, headings, self._units(levels, counts))

    def _units(self, levels: np.ndarray, counts: np.ndarray) -> list[int]:
        """Group pieces into units of at least ``min_unit_tokens``.

        Headings and blank lines always start a new unit, so a topic change at a paragraph break is
        never hidden inside a unit.
        """
        units, acc = [0], 0
        for k, c in enumerate(counts.tolist()):
            if acc >= self.min_unit_tokens or (acc and levels[k] <= bd.PARAGRAPH):
                units.append(k)
                acc = 0
            acc += c
        units.append(len(counts))
        return units

    def _segment(self, doc: _Doc, emb: np.ndarray, initial_path: list[str]) -> Plan:
        cum = np.concatenate([[0], np.cumsum(doc.counts)])
        units = np.asarray(doc.units)
        breaks = units[1:-1][self._breakpoints(emb)] if len(units) > 2 else np.zeros(0, dtype=int)
        cuts = self._fit_sizes(
            cum, doc.levels, [0, *breaks.tolist(), len(doc.counts)], self._distance_at(units, emb)
        )
        exact = self._structure._exact_edges(doc.ix, doc.edges, doc.levels)
        starts, ends, sizes = self._structure._verify(doc.text, doc.edges, cum, cuts, exact)
        token_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
        paths = [p or list(initial_path) for p in bd.section_paths(doc.headings, starts)]
        return Plan(starts, ends, sizes, token_starts, paths)

    def distances(self, emb: np.ndarray) -> np.ndarray:
        """Cosine distance between the windows before and after each unit boundary."""
        n = len(emb)
        if n < 2:
            return np.zeros(0)
        csum = np.concatenate([np.zeros((1, emb.shape[1])), np.cumsum(emb, axis=0)])
        i = np.arange(1, n)
        lo, hi = np.maximum(i - self.window, 0), np.minimum(i + self.window, n)
        left = (csum[i] - csum[lo]) / (i - lo)[:, None]
        right = (csum[hi] - csum[i]) / (hi - i)[:, None]
        cos = (left * right).sum(1) / (np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1) + 1e-12)
        return 1.0 - cos

    def _breakpoints(self, emb: np.ndarray) -> np.ndarray:
        """Boolean mask over unit boundaries: where the topic changes."""
        d = self.distances(emb)
        if len(d) < 2:
            return np.zeros(len(d), dtype=bool)
        a = self.threshold_amount
        if self.threshold == "percentile":
            return d > np.percentile(d, a)
        if self.threshold == "stddev":
            return d > d.mean() + a * d.std()
        if self.threshold == "interquartile":
            q1, q3 = np.percentile(d, [25, 75])
            return d > q3 + a * (q3 - q1)
        g = np.gradient(d)
        return g > np.percentile(g, a)

    def _distance_at(self, units: np.ndarray, emb: np.ndarray) -> dict[int, float]:
        d = self.distances(emb)
        return dict(zip(units[1:-1].tolist(), d.tolist(), strict=True))

    def _fit_sizes(
        self, cum: np.ndarray, levels: np.ndarray, cuts: list[int], dist: dict[int, float]
    ) -> list[int]:
        """Split segments over ``max_tokens`` structurally; merge those under ``min_tokens``."""
        fitted = [0]
        for a, b in zip(cuts, cuts[1:], strict=False):
            if cum[b] - cum[a] <= self.max_tokens:
                fitted.append(b)
                continue
            sub = plan_cuts(
                cum[a : b + 1] - cum[a], levels[a : b + 1], self.max_tokens, self.min_tokens, self.max_tokens
            )
            fitted.extend(a + k for k in sub[1:])
        return _merge_small(cum, fitted, dist, self.min_tokens, self.max_tokens)


def _merge_small(
    cum: np.ndarray, cuts: list[int], dist: dict[int, float], min_t: int, max_t: int
) -> list[int]:
    """Remove cuts around segments under ``min_t``, preferring the more similar neighbour."""
    cuts = list(cuts)
    changed = True
    while changed and len(cuts) > 2:
        changed = False
        for i in range(len(cuts) - 1):
            size = cum[cuts[i + 1]] - cum[cuts[i]]
            if size >= min_t:
                continue
            options = []
            if i > 0 and cum[cuts[i + 1]] - cum[cuts[i - 1]] <= max_t:
                options.append((dist.get(cuts[i], 1.0), i))  # merge left: drop the cut before
            if i + 2 < len(cuts) and cum[cuts[i + 2]] - cum[cuts[i]] <= max_t:
                options.append((dist.get(cuts[i + 1], 1.0), i + 1))  # merge right: drop the cut after
            if options:
                del cuts[min(options)[1]]
                changed = True
                break
    return cuts
