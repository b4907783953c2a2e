"""Deterministic quality gates: evidence found in the source, answer supported, no refusals."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

_QUOTES = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"}
)
_WORD = re.compile(r"[\w']+")
_STOP = frozenset(
    "a an the of to in on at for by with from and or but not is are was were be been being it its this that these "
    "those as which who whom what when where why how can could should would will shall may might must do does did "
    "has have had than then there their they them he she his her we you your i our us so such if into about also "
    "any all each other more most some no nor only own same too very just".split()
)
_REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i cannot|i can'?t|as an ai|i do not have|i don'?t have|not (?:mentioned|provided|"
    r"stated|specified) in the|no information|cannot be determined|unable to (?:answer|determine))\b",
    re.I,
)
# Soft refusals name the topic and sound like answers: "The text does not specify which ...".
_SOFT_REFUSAL = re.compile(
    r"\b(?:the|this|that|these|provided|given)\s+(?:\w+\s+)?(?:text|document|excerpt|passage|context|source|"
    r"section|article|evidence)s?\s+(?:does|do|did)\s*(?:not|n't)\s+(?:\w+\s+)?(?:specify|say|mention|state|"
    r"provide|contain|describe|include|indicate|give|explain|discuss|address|define|list|detail)\b"
    r"|\b(?:is|are)\s+not\s+(?:explicitly\s+|clearly\s+)?(?:specified|mentioned|stated|given|provided|"
    r"described|indicated|defined)(?:\s+(?:in|by)\s+the\s+\w+|\s*[.!]?\s*$)"
    r"|\bthere\s+is\s+no\s+(?:mention|information|indication|detail)\b"
    r"|^\s*(?:unknown|not specified|n/?a|none given)\s*\.?\s*$",
    re.I,
)


def normalize_with_map(text: str) -> tuple[str, list[int]]:
    """NFKC, lower-cased, quotes unified, whitespace collapsed; plus a map back to ``text`` indices."""
    out: list[str] = []
    index: list[int] = []
    prev_space = True
    for i, ch in enumerate(text):
        norm = unicodedata.normalize("NFKC", ch).translate(_QUOTES).lower()
        for c in norm:
            if c.isspace():
                if prev_space:
                    continue
                c = " "
                prev_space = True
            else:
                prev_space = False
            out.append(c)
            index.append(i)
    while out and out[-1] == " ":
        out.pop()
        index.pop()
    return "".join(out), index


def normalize(text: str) -> str:
    """The normalised form used for matching."""
    return normalize_with_map(text)[0]


def locate(
    quote: str, source: str, norm_source: tuple[str, list[int]] | None = None
) -> tuple[int, int] | None:
    """Character span of ``quote`` in ``source`` under normalised matching, or ``None``.

    Quotes with an ellipsis must match piece by piece, in order, every piece (none is dropped for
    being short), close together: the span covers all pieces and may be at most twice the quote's
    length plus 300 characters, so "The ... end" cannot claim a whole chapter.
    """
    ns, idx = norm_source or normalize_with_map(source)
    pieces = [normalize(p).strip(" .\"'") for p in re.split(r"\.\.\.|\u2026", quote)]
    pieces = [p for p in pieces if p]
    if not pieces:
        return None
    if len(pieces) > 1 and any(len(p) < 3 for p in pieces):
        return None
    limit = 2 * len(normalize(quote)) + 300
    best: tuple[int, int] | None = None
    k = ns.find(pieces[0])
    while k >= 0:  # the tightest match: the first piece may also occur earlier, far from the rest
        pos, end = k + len(pieces[0]), k + len(pieces[0])
        for piece in pieces[1:]:
            j = ns.find(piece, pos)
            if j < 0:
                end = -1
                break
            pos = end = j + len(piece)
        if end < 0:
            break
        if end - k <= limit and (best is None or end - k < best[1] - best[0]):
            best = (k, end)
        k = ns.find(pieces[0], k + 1)
    if best is None:
        return None
    return idx[best[0]], idx[best[1] - 1] + 1


def content_words(text: str) -> list[str]:
    """Lower-cased words that carry meaning (no stop words, at least 3 characters, or numbers)."""
    return [w for w in _WORD.findall(normalize(text)) if (len(w) >= 3 and w not in _STOP) or w.isdigit()]


def support(answer: str, evidence: str) -> float:
    """Share of the answer's content words found in the evidence (numbers must all be there)."""
    words = content_words(answer)
    if not words:
        return 1.0
    have = set(content_words(evidence))
    if any(w.isdigit() and w not in have for w in words):
        return 0.0
    return sum(w in have for w in words) / len(words)


def is_refusal(answer: str) -> bool:
    """Whether an answer is a refusal, a soft refusal or a failure message rather than an answer."""
    return bool(_REFUSAL.search(answer) or _SOFT_REFUSAL.search(answer))


def token_f1(pred: str, gold: str) -> float:
    """SQuAD-style token F1 on normalised words."""
    p, g = _WORD.findall(normalize(pred)), _WORD.findall(normalize(gold))
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)
