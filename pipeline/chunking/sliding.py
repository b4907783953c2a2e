"""SlidingWindowChunker: fixed token windows with overlap, spans from the offset mapping."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.chunking import boundaries as bd
from pipeline.chunking.base import BaseChunker, Plan
from pipeline.errors import ConfigError
from pipeline.tokenizer import TokenizerLike

_BLOCK_CHARS = 1 << 20  # encode huge documents in blocks: BPE on one giant word is superlinear
_SNAP_FRACTION = 0.1  # move a window edge to a word boundary if it is within 10% of the window


class SlidingWindowChunker(BaseChunker):
    """Windows of ``max_tokens`` tokens every ``stride_tokens`` tokens (overlap inside the budget).

    The document is tokenized once; each window's character span comes from the tokenizer's offset
    mapping (never from decoded text), and its edges are moved to word boundaries when one lies
    within 10% of the window. Every window is then re-tokenized and shrunk if it would exceed
    ``max_tokens``. Chunks overlap, so they do not concatenate back to the document.

    Args:
        stride_tokens: distance between window starts (default: 3/4 of ``max_tokens``).

    """

    name = "sliding"

    def __init__(
        self, *, tokenizer: TokenizerLike = None, max_tokens: int = 512, stride_tokens: int | None = None
    ):
        super().__init__(tokenizer=tokenizer, max_tokens=max_tokens, min_tokens=0)
        self.stride_tokens = stride_tokens or max(1, (3 * max_tokens) // 4)
        if not 1 <= self.stride_tokens <= self.max_tokens:
            raise ConfigError(
                [f"stride_tokens must be in [1, max_tokens], got {stride_tokens}"],
                source="SlidingWindowChunker",
            )

    def config(self) -> dict[str, Any]:
        """Settings that determine the output."""
        return {**super().config(), "stride_tokens": self.stride_tokens}

    def _offsets(self, text: str, ix: bd.TextIndex) -> tuple[np.ndarray, np.ndarray]:
        """Token start/end character offsets of the whole document (blockwise for huge ones)."""
        blocks = [0]
        while len(text) - blocks[-1] > _BLOCK_CHARS:
            target = blocks[-1] + _BLOCK_CHARS
            k = int(np.searchsorted(ix.ws_cut, target))
            cut = int(ix.ws_cut[k - 1]) if k > 0 and ix.ws_cut[k - 1] > blocks[-1] else target
            blocks.append(cut)
        blocks.append(len(text))
        encs = self.tokenizer.encode_batch([text[a:b] for a, b in zip(blocks, blocks[1:], strict=False)])
        starts, ends = [], []
        for base, enc in zip(blocks, encs, strict=False):
            off = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
            starts.append(off[:, 0] + base)
            ends.append(off[:, 1] + base)
        return np.concatenate(starts), np.concatenate(ends)

    def _plan(self, text: str, fmt: str | None, initial_path: list[str]) -> Plan:
        ix = bd.TextIndex(text)
        tok_s, tok_e = self._offsets(text, ix)
        n_tok = len(tok_s)
        if n_tok == 0:  # e.g. whitespace only, for a tokenizer that drops whitespace
            return Plan([0], [len(text)], [self.tokenizer.count(text)], [0], [list(initial_path)])
        starts, ends, counts, firsts = [], [], [], []
        i = 0
        while True:
            j = min(i + self.max_tokens, n_tok)
            a = (
                0
                if i == 0
                else self._snap_start(ix, int(tok_s[i]), int(tok_e[min(i + self.max_tokens // 10, j - 1)]))
            )
            a = min(a, ends[-1]) if ends else a  # never leave a gap after the previous window
            b = (
                len(text)
                if j == n_tok
                else self._snap_end(
                    ix, a, int(tok_s[max(j - self.max_tokens // 10, i + 1)]), int(tok_e[j - 1])
                )
            )
            b, n = self._fit(text, tok_s, a, max(b, a + 1))
            starts.append(a)
            ends.append(b)
            counts.append(n)
            firsts.append(i)
            if b >= len(text):
                break
            # Next window: one stride on, but never past the end of this one (it may have shrunk).
            last_inside = int(np.searchsorted(tok_s, b, side="right")) - 1
            i = max(i + 1, min(i + self.stride_tokens, last_inside))
        paths = [p or list(initial_path) for p in bd.section_paths(bd.find_headings(text, fmt), starts)]
        return Plan(starts, ends, counts, firsts, paths)

    def _snap_start(self, ix: bd.TextIndex, start: int, limit: int) -> int:
        """Move a window start forward to the next word start if one is near."""
        if start <= 0 or ix.ws[start - 1] or ix.ws[start]:
            return start
        k = int(np.searchsorted(ix.ws_cut, start))
        if k < len(ix.ws_cut) and ix.ws_cut[k] <= limit:
            return int(ix.ws_cut[k])
        return start

    def _snap_end(self, ix: bd.TextIndex, start: int, limit: int, end: int) -> int:
        """Move a window end back to the previous whitespace cut if one is near."""
        if end >= ix.n or ix.ws[end] or ix.ws[end - 1]:
            return end
        k = int(np.searchsorted(ix.ws_cut, end)) - 1
        if k >= 0 and ix.ws_cut[k] >= max(limit, start + 1):
            return int(ix.ws_cut[k])
        return end

    def _fit(self, text: str, tok_s: np.ndarray, a: int, b: int) -> tuple[int, int]:
        """Re-tokenize a window; if it exceeds the budget, move its end back to a token start."""
        n = self.tokenizer.count(text[a:b])
        while n > self.max_tokens and b - a > 1:
            k = int(np.searchsorted(tok_s, b)) - (n - self.max_tokens)
            new_b = int(tok_s[k]) if k > 0 else b - 1
            b = new_b if a < new_b < b else b - 1
            n = self.tokenizer.count(text[a:b])
        return b, n
