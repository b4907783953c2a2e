"""Retrieval probe grids (held-out seeds, real haystacks) and exact scoring."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from data_contracts import QARecord, SourceDocument, TaskType, content_hash
from pipeline.chat import ChatFormatter
from pipeline.synthesis.teacher_free import TeacherFreeGenerator

HELD_OUT_SEED = 1_000_003  # probes never reuse a training seed
PROBE_TASKS = (TaskType.PASSKEY, TaskType.NEEDLE_MULTIKEY)


@dataclass(frozen=True)
class Probe:
    """One probe: a record to prompt with, its grid cell and the exact string that must come back."""

    record: QARecord
    length: int
    depth: float
    expected: str


def expected_answer(rec: QARecord) -> str:
    """The exact token sequence a correct reply contains (the key or value digits)."""
    digits = re.findall(r"\d{5,}", rec.answer)
    return digits[-1] if digits else rec.answer


def score(expected: str, reply: str) -> bool:
    """Exact match of the expected digits as a whole number in the reply."""
    return re.search(rf"(?<!\d){re.escape(expected)}(?!\d)", reply) is not None


def probe_grid(
    docs: Sequence[SourceDocument],
    fmt: ChatFormatter,
    lengths: Sequence[int],
    depths: Sequence[float],
    tasks: Sequence[TaskType] = PROBE_TASKS,
    per_cell: int = 1,
    seed: int = HELD_OUT_SEED,
) -> list[Probe]:
    """Probes for every (task, length, depth) cell; depths in percent (0-100)."""
    gen = TeacherFreeGenerator(docs, fmt)
    out = []
    for task in tasks:
        for length in lengths:
            for depth in depths:
                for i in range(per_cell):
                    s = int(content_hash(seed, task.value, length, depth, i), 16) % (2**31)
                    rec = gen.make(task, length, min(depth, 99.9) / 100.0, random.Random(s), s)
                    out.append(Probe(rec, length, depth, expected_answer(rec)))
    return out
