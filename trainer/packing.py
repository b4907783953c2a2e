"""Best-fit-decreasing packing into packs of the stage length, then a seeded shuffle of the packs.

A sample is never split across packs. Packs are shuffled after packing because BFD makes early
packs long-sample-heavy and late packs short-sample-heavy (the axolotl bias).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence


def pack_bfd(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of ``lengths`` grouped into packs of at most ``capacity`` tokens (best fit decreasing).

    O(n log n): open packs are kept sorted by remaining room and the tightest fit is found by bisection.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    packs: list[list[int]] = []
    rooms: list[tuple[int, int]] = []  # (remaining room, pack index), sorted
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"sample {i} has {n} tokens, more than the pack capacity {capacity}")
        k = bisect.bisect_left(rooms, (n, -1))
        if k < len(rooms):
            room, p = rooms.pop(k)
            packs[p].append(i)
            bisect.insort(rooms, (room - n, p))
        else:
            packs.append([i])
            bisect.insort(rooms, (capacity - n, len(packs) - 1))
    return packs


def shuffled(packs: list[list[int]], seed: int) -> list[list[int]]:
    """Packs in a seeded random order (sample order inside a pack is kept)."""
    out = list(packs)
    random.Random(seed).shuffle(out)
    return out


def fill(packs: list[list[int]], lengths: Sequence[int], capacity: int) -> float:
    """Share of pack capacity holding real tokens."""
    return sum(lengths[i] for p in packs for i in p) / max(1, len(packs) * capacity)
