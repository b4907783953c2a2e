"""Choose cuts among candidate boundaries: near a balanced target, inside [min, max] tokens.

Greedy from left to right, but each chunk aims at ``remaining / ceil(remaining / target)`` tokens,
so the document's tail is shared out evenly instead of ending in a tiny chunk, and among feasible
ends it prefers strong boundaries (heading > paragraph > line > sentence > clause > word > char)
over hitting the target exactly. One window per chunk: linear time.
"""

from __future__ import annotations

import math

import numpy as np

# Cost of cutting at each boundary level, in units of relative distance from the target size:
# a paragraph break 25% short of the target costs about the same as a sentence break on target.
LEVEL_COST = np.array([0.0, 0.05, 0.15, 0.3, 0.55, 0.8, 1.2])


def plan_cuts(
    cum: np.ndarray, levels: np.ndarray, max_tokens: int, min_tokens: int, target: int
) -> list[int]:
    """Pick boundary indices ``0 = k0 < k1 < ... = K`` so every chunk has at most ``max_tokens``.

    Args:
        cum: tokens before each boundary (length K+1, ``cum[0] == 0``), non-decreasing; no single
            piece (``cum[k+1] - cum[k]``) may exceed ``max_tokens``.
        levels: boundary level of each boundary (length K+1; the two ends are ignored).
        max_tokens: hard upper limit per chunk.
        min_tokens: chunks stay at or above this where the document allows.
        target: preferred chunk size; sizes are balanced around it.

    """
    last = len(cum) - 1
    cuts = [0]
    s = 0
    while s < last:
        remaining = int(cum[last] - cum[s])
        if remaining <= max_tokens:
            cuts.append(last)
            break
        goal = remaining / math.ceil(remaining / target)
        hi = int(np.searchsorted(cum, cum[s] + max_tokens, side="right")) - 1
        lo = int(np.searchsorted(cum, cum[s] + min_tokens, side="left"))
        lo = max(lo, s + 1)
        if hi < s + 1:
            raise ValueError(f"piece after boundary {s} exceeds max_tokens; refine pieces before planning")
        if lo > hi:
            lo = s + 1
        window = np.arange(lo, hi + 1)
        size = cum[window] - cum[s]
        cost = LEVEL_COST[levels[window]] + np.abs(size - goal) / goal
        tail = cum[last] - cum[window]
        cost = cost + np.where((tail > 0) & (tail < min_tokens), 1.0, 0.0)  # avoid leaving a runt
        s = int(window[int(np.argmin(cost))])
        cuts.append(s)
    return cuts
