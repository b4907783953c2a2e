"""A deterministic batch plan: which samples go into which pack, step and rank.

The plan is a pure function of (sample lengths, stage config, seed), so a resumed run rebuilds the
same plan and continues at the saved (stage, step) cursor. Each step holds ``packs_per_step`` packs,
``round(tokens_per_step / max_length)`` rounded to a multiple of the world size (so tokens per optimizer
step stay near the target across stages), dealt round-robin to ranks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from trainer.config import StageConfig
from trainer.packing import fill, pack_bfd, shuffled


@dataclass(frozen=True)
class StagePlan:
    """Steps of one stage: ``steps[s][p]`` is a pack (row indices into the stage's dataset)."""

    index: int
    max_length: int
    steps: list[list[list[int]]]
    fill: float
    deferred: int  # samples longer than this stage, left for a later one
    samples: int
    packs_per_step: int = 1

    @property
    def tokens_per_step(self) -> int:
        """Pack capacity of one optimizer step at this stage."""
        return self.packs_per_step * self.max_length

    def packs_for(self, step: int, rank: int, world: int) -> list[list[int]]:
        """The packs of ``step`` that ``rank`` processes."""
        return self.steps[step][rank::world]


def select_rows(lengths: np.ndarray, stage: StageConfig, prev_max: int, seed: int) -> tuple[list[int], int]:
    """Rows for a stage: the new length band plus a replay share of shorter rows; and the deferred count."""
    fits = np.nonzero(lengths <= stage.max_length)[0]
    deferred = int((lengths > stage.max_length).sum())
    band = [int(i) for i in fits if lengths[i] > prev_max]
    shorter = [int(i) for i in fits if lengths[i] <= prev_max]
    if not band:  # nothing new at this length: train on what fits
        return [int(i) for i in fits], deferred
    if stage.replay_share > 0 and shorter:
        n = min(len(shorter), round(len(band) * stage.replay_share / (1 - stage.replay_share)))
        band += random.Random(seed).sample(shorter, n)
    return sorted(band), deferred


def plan_stage(
    index: int,
    lengths: np.ndarray,
    stage: StageConfig,
    prev_max: int,
    step_tokens: int,
    world: int,
    seed: int,
) -> StagePlan:
    """Pack the stage's rows and lay the packs out over its steps (re-packing each epoch)."""
    rows, deferred = select_rows(lengths, stage, prev_max, seed)
    if not rows:
        raise ValueError(f"stage {index} (max_length {stage.max_length}) has no samples that fit")
    packs_per_step = packs_for_target(step_tokens, stage.max_length, world)
    n_steps = stage.steps or max(1, round(stage.tokens / (packs_per_step * stage.max_length)))
    sub = [int(lengths[i]) for i in rows]
    steps: list[list[list[int]]] = []
    pool: list[list[int]] = []
    epoch, fills = 0, []
    while len(steps) < n_steps:
        if len(pool) < packs_per_step:
            packs = pack_bfd(sub, stage.max_length)
            fills.append(fill(packs, sub, stage.max_length))
            pool += [[rows[i] for i in p] for p in shuffled(packs, seed * 1000 + index * 100 + epoch)]
            epoch += 1
            continue
        steps.append(pool[:packs_per_step])
        pool = pool[packs_per_step:]
    return StagePlan(
        index, stage.max_length, steps, float(np.mean(fills)), deferred, len(rows), packs_per_step
    )


def packs_for_target(step_tokens: int, max_length: int, world: int) -> int:
    """Packs per step nearest to ``step_tokens`` tokens, at least one per rank and a multiple of ranks."""
    per_rank = max(1, round(step_tokens / (max_length * world)))
    return per_rank * world
