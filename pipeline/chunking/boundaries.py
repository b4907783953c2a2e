"""Candidate cut positions, ranked by how strong a boundary they are.

A cut at position ``p`` splits ``text[:p]`` from ``text[p:]``. Cuts are placed between a
non-space character and the whitespace that follows it (*whitespace cuts*): every whitespace run
stays with the text after it. For most tokenizers (byte-level BPE with the GPT-2 split pattern,
WordPiece) token counts add up exactly across such cuts, which lets the recursive chunker count
each piece once. Everything here is vectorised over the text's code points with numpy: one pass
of C-speed work per document, no per-character Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# Boundary levels, strongest first. Lower is better.
HEADING, PARAGRAPH, LINE, SENTENCE, CLAUSE, WORD, CHAR = range(7)
LEVEL_NAMES = ("heading", "paragraph", "line", "sentence", "clause", "word", "char")

# Whitespace as tokenizers see it (Unicode White_Space). Python's str.isspace also accepts
# \x1c-\x1f, which byte-level BPE treats as punctuation: cutting before them is not a clean cut.
_WS_CODES = np.array(
    [
        9,
        10,
        11,
        12,
        13,
        32,
        0x85,
        0xA0,
        0x1680,
        *range(0x2000, 0x200B),
        0x2028,
        0x2029,
        0x202F,
        0x205F,
        0x3000,
    ]
)
_WS_SET = frozenset(chr(c) for c in _WS_CODES.tolist())
_SENT_END = np.array([ord(c) for c in ".!?"])
_CLOSERS = np.array([ord(c) for c in "\"')]\u2019\u201d"])
_CLAUSE_END = np.array([ord(c) for c in ",;:\u2014"])
_CJK_SENT = np.array([0x3002, 0xFF01, 0xFF1F])
_CJK_CLAUSE = np.array([0x3001, 0xFF0C, 0xFF1B, 0xFF1A])
_NL = 10

_MD_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(\S.*?)[ \t#]*\r?$", re.M)
_FENCE = re.compile(r"^ {0,3}(```|~~~)", re.M)
_RST_ADORN = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}[ \t]*\r?$", re.M)


def is_ws(ch: str) -> bool:
    """Whether ``ch`` is whitespace in the tokenizer's sense (Unicode White_Space)."""
    return ch in _WS_SET


@dataclass(frozen=True)
class Heading:
    """A heading line: where its cut is, its nesting level and its title."""

    cut: int
    depth: int
    title: str


class TextIndex:
    """Code points of a text and its whitespace structure, as numpy arrays."""

    def __init__(self, text: str) -> None:
        self.n = len(text)
        self.codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        self.ws = np.isin(self.codes, _WS_CODES)
        prev_ws = np.concatenate([[True], self.ws[:-1]])
        self.ws_cut = np.nonzero(self.ws & ~prev_ws)[0]  # starts of whitespace runs after text
        # Newlines per whitespace run: the run starting at ws_cut[i] ends at the next non-space.
        nl_cum = np.concatenate([[0], np.cumsum(self.codes == _NL)])
        nonws = np.concatenate([np.nonzero(~self.ws)[0], [self.n]])  # sentinel: text end
        run_end = nonws[np.searchsorted(nonws, self.ws_cut)]
        self.run_newlines = nl_cum[run_end] - nl_cum[self.ws_cut]
        self.run_reaches_text = run_end < self.n

    def prev_in(self, pos: np.ndarray, codes: np.ndarray, back: int = 1) -> np.ndarray:
        """Whether the character ``back`` positions before each position is in ``codes``."""
        idx = pos - back
        ok = idx >= 0
        out = np.zeros(len(pos), dtype=bool)
        out[ok] = np.isin(self.codes[idx[ok]], codes)
        return out

    def exact_cut(self, pos: np.ndarray) -> np.ndarray:
        """Whether each position is a whitespace cut (whitespace after non-whitespace)."""
        inner = (pos > 0) & (pos < self.n)
        out = ~inner
        p = pos[inner]
        out[inner] = self.ws[p] & ~self.ws[p - 1]
        return out


def structural_cuts(text: str, fmt: str | None, index: TextIndex | None = None):
    """Heading, paragraph, line and sentence cuts: ``(positions, levels, headings, index)``."""
    ix = index or TextIndex(text)
    cut, nl = ix.ws_cut, ix.run_newlines
    line_like = (nl > 0) & ix.run_reaches_text
    level = np.where(nl >= 2, PARAGRAPH, LINE).astype(np.int8)
    sent = (
        (nl == 0)
        & ix.run_reaches_text
        & (ix.prev_in(cut, _SENT_END) | (ix.prev_in(cut, _CLOSERS) & ix.prev_in(cut, _SENT_END, 2)))
    )
    cjk = np.nonzero(np.isin(ix.codes, _CJK_SENT))[0] + 1
    cjk = cjk[(cjk < ix.n)]
    cjk = cjk[~ix.ws[cjk]] if len(cjk) else cjk
    headings = find_headings(text, fmt)
    pos = np.concatenate(
        [cut[line_like], cut[sent], cjk, np.array([h.cut for h in headings], dtype=np.int64)]
    )
    lev = np.concatenate(
        [
            level[line_like],
            np.full(int(sent.sum()), SENTENCE, np.int8),
            np.full(len(cjk), SENTENCE, np.int8),
            np.full(len(headings), HEADING, np.int8),
        ]
    )
    pos, lev = dedupe_cuts(pos.astype(np.int64), lev, ix.n)
    return pos, lev, headings, ix


def finer_cuts(ix: TextIndex, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Clause and word cuts strictly inside ``(start, end)``, with their levels."""
    lo, hi = np.searchsorted(ix.ws_cut, [start + 1, end])
    words = ix.ws_cut[lo:hi]
    clause = ix.prev_in(words, _CLAUSE_END)
    cjk = np.nonzero(np.isin(ix.codes[start + 1 : end], _CJK_CLAUSE))[0] + start + 2
    cjk = cjk[(cjk < end)]
    cjk = cjk[~ix.ws[cjk]] if len(cjk) else cjk
    pos = np.concatenate([words, cjk]).astype(np.int64)
    lev = np.concatenate([np.where(clause, CLAUSE, WORD).astype(np.int8), np.full(len(cjk), CLAUSE, np.int8)])
    order = np.argsort(pos, kind="stable")
    return pos[order], lev[order]


def dedupe_cuts(pos: np.ndarray, lev: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort cuts, keep the strongest level per position and drop the document edges."""
    keep = (pos > 0) & (pos < n)
    pos, lev = pos[keep], lev[keep]
    order = np.lexsort((lev, pos))
    pos, lev = pos[order], lev[order]
    first = np.ones(len(pos), dtype=bool)
    first[1:] = pos[1:] != pos[:-1]
    return pos[first], lev[first]


# -- headings ------------------------------------------------------------------------------------
def _fenced_ranges(text: str) -> list[tuple[int, int]]:
    marks = [m.start() for m in _FENCE.finditer(text)]
    return [(marks[i], marks[i + 1]) for i in range(0, len(marks) - 1, 2)]


def _cut_before_line(text: str, line_start: int) -> int:
    """The whitespace cut before a line: right after the last non-space that precedes it."""
    p = line_start
    while p > 0 and is_ws(text[p - 1]):
        p -= 1
    return p


def find_headings(text: str, fmt: str | None) -> list[Heading]:
    """Markdown ATX and reST (underline/overline) headings; each cut is before the heading line."""
    headings: list[Heading] = []
    if fmt in (None, "md", "txt"):
        fences = _fenced_ranges(text)
        for m in _MD_HEADING.finditer(text):
            if not any(a <= m.start() <= b for a, b in fences):
                headings.append(
                    Heading(_cut_before_line(text, m.start()), len(m.group(1)), m.group(2).strip())
                )
    if fmt in (None, "rst", "txt"):
        headings.extend(_rst_headings(text))
    headings.sort(key=lambda h: h.cut)
    return [h for i, h in enumerate(headings) if i == 0 or h.cut != headings[i - 1].cut]


def _rst_headings(text: str) -> list[Heading]:
    depths: dict[str, int] = {}
    out: list[Heading] = []
    for m in _RST_ADORN.finditer(text):
        if m.start() == 0:
            continue
        title_end = m.start() - 1  # the newline ending the title line
        title_start = text.rfind("\n", 0, title_end) + 1
        raw_title = text[title_start:title_end]
        title = raw_title.strip()
        adorn = m.group(0).strip()
        if not title or _RST_ADORN.fullmatch(raw_title) or len(adorn) < len(title):
            continue
        over_start = text.rfind("\n", 0, max(title_start - 1, 0)) + 1
        over = title_start > 0 and text[over_start : title_start - 1].strip() == adorn
        depth = depths.setdefault(("o" if over else "u") + adorn[0], len(depths) + 1)
        out.append(Heading(_cut_before_line(text, over_start if over else title_start), depth, title))
    return out


def section_paths(headings: list[Heading], cuts: list[int]) -> list[list[str]]:
    """The heading trail in force at each position in ``cuts`` (sorted ascending)."""
    paths: list[list[str]] = []
    stack: list[Heading] = []
    hi = 0
    for c in cuts:
        while hi < len(headings) and headings[hi].cut <= c:
            h = headings[hi]
            while stack and stack[-1].depth >= h.depth:
                stack.pop()
            stack.append(h)
            hi += 1
        paths.append([h.title for h in stack])
    return paths
