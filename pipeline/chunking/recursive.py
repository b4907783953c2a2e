"""RecursiveChunker: structure-aware chunks that never exceed the token budget."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.chunking import boundaries as bd
from pipeline.chunking.base import BaseChunker, Plan
from pipeline.chunking.planner import plan_cuts
from pipeline.errors import ConfigError
from pipeline.tokenizer import TokenizerLike

_PRESPLIT_CHARS_PER_TOKEN = 24  # a piece this many chars per budget token is surely too long to count whole


class RecursiveChunker(BaseChunker):
    """Split at the strongest boundaries that keep chunks within ``[min_tokens, max_tokens]``.

    The hierarchy is heading (Markdown ATX, reST) > blank line > line > sentence > clause > word >
    character. The document is cut into pieces at heading/paragraph/line/sentence boundaries and
    each piece is tokenized once; pieces over the budget are split further down the hierarchy.
    Chunks are then planned on the summed counts (see :mod:`pipeline.chunking.planner`). Counts
    add up exactly across whitespace cuts for most tokenizers (checked for each tokenizer when it
    is loaded); any chunk whose count could differ is re-tokenized and, if needed, cut again.

    Args:
        target_tokens: preferred chunk size (default ``max_tokens``); the planner balances
            chunk sizes around it so the last chunk of a document is not a runt.

    """

    name = "recursive"

    def __init__(
        self,
        *,
        tokenizer: TokenizerLike = None,
        max_tokens: int = 512,
        min_tokens: int | None = None,
        target_tokens: int | None = None,
    ):
        super().__init__(tokenizer=tokenizer, max_tokens=max_tokens, min_tokens=min_tokens)
        self.target_tokens = target_tokens or max_tokens
        if not self.min_tokens <= self.target_tokens <= self.max_tokens:
            raise ConfigError(
                [f"target_tokens must be in [min_tokens, max_tokens], got {target_tokens}"],
                source="RecursiveChunker",
            )

    def config(self) -> dict[str, Any]:
        """Settings that determine the output."""
        return {**super().config(), "target_tokens": self.target_tokens}

    def _plan(self, text: str, fmt: str | None, initial_path: list[str]) -> Plan:
        pos, lev, headings, ix = bd.structural_cuts(text, fmt)
        edges, levels, counts = self._pieces(text, ix, pos, lev)
        return self.plan_from_pieces(text, ix, edges, levels, counts, headings, initial_path)

    def plan_from_pieces(
        self,
        text: str,
        ix: bd.TextIndex,
        edges: np.ndarray,
        levels: np.ndarray,
        counts: np.ndarray,
        headings: list[bd.Heading],
        initial_path: list[str],
    ) -> Plan:
        """Plan chunks over pieces ``text[edges[i]:edges[i+1]]`` whose counts are each <= max."""
        cum = np.concatenate([[0], np.cumsum(counts)])
        cuts = plan_cuts(cum, levels, self.max_tokens, self.min_tokens, self.target_tokens)
        exact = self._exact_edges(ix, edges, levels)
        starts, ends, sizes = self._verify(text, edges, cum, cuts, exact)
        token_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
        paths = [p or list(initial_path) for p in bd.section_paths(headings, starts)]
        return Plan(starts, ends, sizes, token_starts, paths)

    # -- pieces ----------------------------------------------------------------------------------
    def _pieces(
        self, text: str, ix: bd.TextIndex, pos: np.ndarray, lev: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Piece edges (with the two ends), their levels, and each piece's exact token count."""
        edges = np.concatenate([[0], pos, [len(text)]])
        levels = np.concatenate([[bd.HEADING], lev, [bd.HEADING]]).astype(np.int8)
        edges, levels = self._presplit_giants(ix, edges, levels)
        counts = np.array(self._count_spans(text, edges[:-1], edges[1:]), dtype=np.int64)
        for finer in (self._finer_cuts, self._char_cuts, self._char_cuts, self._char_cuts):
            over = np.nonzero(counts > self.max_tokens)[0]
            if not len(over):
                break
            edges, levels, counts = self._refine(text, ix, edges, levels, counts, over, finer)
        if (counts > self.max_tokens).any():
            i = int(np.argmax(counts))
            raise ConfigError(
                [f"cannot split text[{edges[i]}:{edges[i + 1]}] below max_tokens={self.max_tokens}"],
                source="RecursiveChunker",
            )
        return edges, levels, counts

    def _presplit_giants(
        self, ix: bd.TextIndex, edges: np.ndarray, levels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cut pieces too long to even count in one go (a 10 MB line) before counting anything."""
        limit = self.max_tokens * _PRESPLIT_CHARS_PER_TOKEN
        lengths = np.diff(edges)
        giants = np.nonzero(lengths > limit)[0]
        if not len(giants):
            return edges, levels
        add_pos, add_lev = [], []
        for i in giants:
            a, b = int(edges[i]), int(edges[i + 1])
            p, lv = bd.finer_cuts(ix, a, b)
            if len(p) == 0:
                step = max(1, self.max_tokens // 2)
                p = np.arange(a + step, b, step, dtype=np.int64)
                lv = np.full(len(p), bd.CHAR, np.int8)
            add_pos.append(p)
            add_lev.append(lv)
        edges, levels = _merge(edges, levels, np.concatenate(add_pos), np.concatenate(add_lev))
        return edges, levels

    def _finer_cuts(self, ix: bd.TextIndex, a: int, b: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        pos, lev = bd.finer_cuts(ix, a, b)
        return (pos, lev) if len(pos) else self._char_cuts(ix, a, b, count)

    def _char_cuts(self, ix: bd.TextIndex, a: int, b: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        # Equal-length character pieces of about half the budget each; re-counted and split again
        # if needed, so a piece of any size converges in a few rounds.
        n_parts = max(2, -(-count // max(1, self.max_tokens // 2)))
        pos = np.unique(np.linspace(a, b, n_parts + 1, dtype=np.int64)[1:-1])
        pos = pos[(pos > a) & (pos < b)]
        return pos, np.full(len(pos), bd.CHAR, np.int8)

    def _refine(self, text, ix, edges, levels, counts, over, finer):
        add_pos, add_lev = [], []
        for i in over:
            p, lv = finer(ix, int(edges[i]), int(edges[i + 1]), int(counts[i]))
            add_pos.append(p)
            add_lev.append(lv)
        new_edges, new_levels = _merge(edges, levels, np.concatenate(add_pos), np.concatenate(add_lev))
        # Re-count only the pieces that changed.
        old = dict(
            zip(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True), counts.tolist(), strict=True)
        )
        spans = list(zip(new_edges[:-1].tolist(), new_edges[1:].tolist(), strict=True))
        todo = [k for k, sp in enumerate(spans) if sp not in old]
        fresh = self._count_spans(text, [spans[k][0] for k in todo], [spans[k][1] for k in todo])
        new_counts = np.array([old.get(sp, 0) for sp in spans], dtype=np.int64)
        new_counts[todo] = fresh
        return new_edges, new_levels, new_counts

    def _count_spans(self, text: str, starts, ends) -> list[int]:
        return self.tokenizer.count_batch([text[a:b] for a, b in zip(starts, ends, strict=True)])

    # -- exactness and verification --------------------------------------------------------------
    def _exact_edges(self, ix: bd.TextIndex, edges: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """Which edges are whitespace cuts across which this tokenizer's counts add up exactly."""
        if not self.tokenizer.additive_at_whitespace:
            exact = np.zeros(len(edges), dtype=bool)
        else:
            exact = (levels < bd.CHAR) & ix.exact_cut(edges)
        exact[0] = exact[-1] = True
        return exact

    def _verify(self, text, edges, cum, cuts, exact) -> tuple[list[int], list[int], list[int]]:
        """Exact counts for every chunk; re-tokenize where needed and cut overflowing chunks again."""
        inexact = np.concatenate(
            [[0], np.cumsum(~exact)]
        )  # chunk (a, b) is exact iff no inexact edge in [a, b]
        items: list[tuple[int, int, int | None]] = [
            (cuts[i], cuts[i + 1], None) for i in range(len(cuts) - 1)
        ]
        while True:
            todo = [i for i, (a, b, n) in enumerate(items) if n is None and inexact[b + 1] - inexact[a] > 0]
            fresh = self._count_spans(
                text, [edges[items[i][0]] for i in todo], [edges[items[i][1]] for i in todo]
            )
            measured = dict(zip(todo, fresh, strict=True))
            nxt: list[tuple[int, int, int | None]] = []
            for i, (a, b, n) in enumerate(items):
                n = measured.get(i, n if n is not None else int(cum[b] - cum[a]))
                if n > self.max_tokens and b - a > 1:  # summed counts under-estimated: cut again
                    mid = _shrink_end(cum, a, b, self.max_tokens - (n - self.max_tokens))
                    nxt += [(a, mid, None), (mid, b, None)]
                else:
                    nxt.append((a, b, n))
            if len(nxt) == len(items):
                items = nxt
                break
            items = nxt
        return (
            [int(edges[a]) for a, _, _ in items],
            [int(edges[b]) for _, b, _ in items],
            [int(n) for _, _, n in items],
        )


def _shrink_end(cum: np.ndarray, a: int, b: int, budget: int) -> int:
    """The last boundary in (a, b) whose summed count fits ``budget`` (at least one piece)."""
    k = int(np.searchsorted(cum, cum[a] + max(budget, 1), side="right")) - 1
    return min(max(k, a + 1), b - 1)


def _merge(
    edges: np.ndarray, levels: np.ndarray, pos: np.ndarray, lev: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Insert cuts into sorted edges, keeping the strongest level where positions coincide."""
    all_pos = np.concatenate([edges, pos])
    all_lev = np.concatenate([levels, lev]).astype(np.int8)
    order = np.lexsort((all_lev, all_pos))
    all_pos, all_lev = all_pos[order], all_lev[order]
    first = np.ones(len(all_pos), dtype=bool)
    first[1:] = all_pos[1:] != all_pos[:-1]
    return all_pos[first], all_lev[first]
