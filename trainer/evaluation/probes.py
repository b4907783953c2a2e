"""Probe grids (held-out seeds, real haystacks), QA probes from held-out records, and their scoring."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from data_contracts import QARecord, SourceDocument, TaskType, content_hash
from pipeline.chat import ChatFormatter
from pipeline.synthesis.teacher_free import TeacherFreeGenerator
from trainer.evaluation import ruler

HELD_OUT_SEED = 1_000_003  # probes never reuse a training seed
PROBE_TASKS = ("passkey", "niah_multikey")


@dataclass(frozen=True)
class Probe:
    """One prompt with its grid cell and the references a correct reply contains.

    ``answer`` is the reference reply: its token count bounds generation. ``depth`` is the gold
    evidence depth in percent (``None`` for tasks without one, such as common-word extraction).
    """

    task: str
    length: int
    depth: float | None
    context: str
    question: str
    answer: str
    refs: tuple[str, ...]
    qa_id: str = ""

    def score(self, reply: str) -> dict:
        """The reply scored both ways: strict (counted in the accuracy tables) and RULER's metric."""
        return {
            "correct": ruler.strict_correct(self.task, reply, self.refs),
            "ruler_score": ruler.ruler_score(self.task, reply, self.refs),
        }


def score(expected: str, reply: str) -> bool:
    """Whole-word match of one expected string in the reply (``31337`` is not in ``313370``)."""
    return ruler.strict_correct("passkey", reply, [expected])


def _seed(seed: int, task: str, length: int, depth: float, i: int) -> int:
    # Tasks keep their pre-RULER names in the seed so existing probe sets stay the same.
    legacy = {"niah_multikey": "needle_multikey", "vt": "variable_tracking"}.get(task, task)
    return int(content_hash(seed, legacy, length, depth, i), 16) % (2**31)


def probe_grid(
    docs: Sequence[SourceDocument],
    fmt: ChatFormatter,
    lengths: Sequence[int],
    depths: Sequence[float],
    tasks: Sequence[str] = PROBE_TASKS,
    per_cell: int = 1,
    seed: int = HELD_OUT_SEED,
) -> list[Probe]:
    """``per_cell`` probes for every (task, length, depth) cell; depths in percent (0-100).

    Common-word extraction has no evidence depth: it gets ``per_cell * len(depths)`` probes per
    length, so every task has the same n per length.
    """
    gen = TeacherFreeGenerator(docs, fmt)
    pool = None
    out = []
    for task in (ruler.task_name(str(t)) for t in tasks):
        if task == "qa":
            continue  # QA probes come from records (qa_probes)
        for length in lengths:
            for depth in depths:
                for i in range(per_cell):
                    s = _seed(seed, task, length, depth, i)
                    rng = random.Random(s)
                    if task == "cwe":
                        pool = pool or ruler.corpus_words(docs)
                        context, question, answer, refs = ruler.cwe_example(fmt, pool, length, rng)
                        out.append(Probe(task, length, None, context, question, answer, tuple(refs)))
                        continue
                    if task == "kv_retrieval":
                        rec = gen.make(TaskType.KV_RETRIEVAL, length, min(depth, 99.9) / 100.0, rng, s)
                        out.append(
                            Probe(
                                task,
                                length,
                                depth,
                                rec.context,
                                rec.question,
                                rec.answer,
                                (rec.answer,),
                                rec.qa_id,
                            )
                        )
                        continue
                    task_type, build = ruler.HAYSTACK_TASKS[task]
                    spec, refs = build(rng)
                    rec = gen.make_from(task_type, spec, length, min(depth, 99.9) / 100.0, rng, s)
                    out.append(
                        Probe(
                            task, length, depth, rec.context, rec.question, rec.answer, tuple(refs), rec.qa_id
                        )
                    )
    return out


def qa_probes(records: Sequence[QARecord], depth_bins: Sequence[float] = ()) -> list[Probe]:
    """QA records as probes (RULER ``qa``): the reference is the record's answer.

    The evidence depth is snapped to the nearest of ``depth_bins`` when given, so QA shares the
    retrieval grid's heatmap cells.
    """
    out = []
    for r in records:
        depth = r.evidence_depth_pct
        if depth_bins:
            depth = min(depth_bins, key=lambda d: abs(d - r.evidence_depth_pct))
        out.append(Probe("qa", r.target_tokens, depth, r.context, r.question, r.answer, (r.answer,), r.qa_id))
    return out
