"""Packed batches: one row per pack, positions restarting at every sample, per-token loss weights.

Sample boundaries travel with the pack (``cu_seqlens``, ``doc_ids``): attention reads them instead
of inferring them from position resets (see ``trainer.attention``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PackedBatch:
    """A pack as tensors (batch size 1, no padding, no attention mask).

    ``target_weights[t]`` weighs the prediction of token ``t + 1`` from position ``t``; it is 0 at
    the last position of every sample, so no sample learns from its neighbour.
    """

    input_ids: torch.Tensor  # [1, T]
    position_ids: torch.Tensor  # [1, T]
    targets: torch.Tensor  # [T] next-token ids (0 where unused)
    target_weights: torch.Tensor  # [T] float32, already normalised for the optimizer step
    seq_lens: list[int]
    cu_seqlens: torch.Tensor | None = None  # int32 [n + 1]: 0, l1, ..., T (FlashAttention varlen layout)
    doc_ids: torch.Tensor | None = None  # int32 [T]: which sample each token belongs to

    def __post_init__(self) -> None:
        if self.cu_seqlens is None:  # built from seq_lens when a caller gives only those
            cu = np.concatenate([[0], np.cumsum(self.seq_lens)]).astype(np.int32)
            self.cu_seqlens = torch.from_numpy(cu).to(self.input_ids.device)
        if self.doc_ids is None:
            ids = np.repeat(np.arange(len(self.seq_lens), dtype=np.int32), self.seq_lens)
            self.doc_ids = torch.from_numpy(ids).to(self.input_ids.device)

    @property
    def max_seqlen(self) -> int:
        """Length of the longest sample in the pack."""
        return max(self.seq_lens)

    @property
    def tokens(self) -> int:
        """Tokens in the pack."""
        return int(self.input_ids.shape[1])

    def to(self, device: torch.device | str) -> PackedBatch:
        """Move tensors to ``device``."""
        return PackedBatch(
            self.input_ids.to(device),
            self.position_ids.to(device),
            self.targets.to(device),
            self.target_weights.to(device),
            self.seq_lens,
            self.cu_seqlens.to(device),
            self.doc_ids.to(device),
        )


def sequence_weights(
    loss_weights: list[np.ndarray], norm: str, n_seqs_in_step: int, weight_in_step: float
) -> list[np.ndarray]:
    """Per-token weights normalised over the whole optimizer step (sum/sum, never a mean of means).

    ``sequence``: each sequence with any weight counts equally, ``w / (N_i * M)`` (LongAlign);
    ``token``: every weighted token counts equally, ``w / sum(w over the step)``.
    The step totals ``M`` and ``sum(w)`` cover every micro-batch and rank of the step.
    """
    out = []
    for w in loss_weights:
        target = w[1:]  # the weight of token t+1 is used at position t
        n_i = float(target.sum())
        if norm == "sequence":
            out.append(target / (n_i * n_seqs_in_step) if n_i > 0 else np.zeros_like(target))
        else:
            out.append(target / weight_in_step if weight_in_step > 0 else np.zeros_like(target))
    return out


def collate(
    samples: list[tuple[np.ndarray, np.ndarray]], norm: str, n_seqs_in_step: int, weight_in_step: float
) -> PackedBatch:
    """Build a :class:`PackedBatch` from ``(input_ids, loss_weights)`` samples."""
    ids = [np.asarray(i, dtype=np.int64) for i, _ in samples]
    weights = sequence_weights(
        [np.asarray(w, dtype=np.float64) for _, w in samples], norm, n_seqs_in_step, weight_in_step
    )
    input_ids = np.concatenate(ids)
    positions = np.concatenate([np.arange(len(i)) for i in ids])
    targets = np.concatenate([np.append(i[1:], 0) for i in ids])
    target_w = np.concatenate([np.append(w, 0.0) for w in weights])
    lens = [len(i) for i in ids]
    if min(lens) < 1:
        raise ValueError("a sample in the pack has no tokens")
    return PackedBatch(
        torch.from_numpy(input_ids)[None],
        torch.from_numpy(positions)[None],
        torch.from_numpy(targets),
        torch.from_numpy(target_w.astype(np.float32)),
        lens,
        torch.from_numpy(np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)),
        torch.from_numpy(np.repeat(np.arange(len(lens), dtype=np.int32), lens)),
    )


def step_totals(loss_weights: list[np.ndarray]) -> tuple[int, float]:
    """(sequences with any target weight, total target weight) over one optimizer step."""
    n = sum(1 for w in loss_weights if float(np.asarray(w)[1:].sum()) > 0)
    return n, float(sum(np.asarray(w)[1:].sum() for w in loss_weights))
