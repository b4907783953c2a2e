"""Run probes, perplexity and QA accuracy for a base model and its adapters."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from data_contracts import QARecord
from pipeline.chat import ChatFormatter
from pipeline.synthesis.grounding import normalize, token_f1
from trainer.evaluation.probes import Probe, score


@dataclass
class ModelResult:
    """Everything measured for one model (base or base + adapter)."""

    name: str
    probes: list[dict] = field(default_factory=list)  # task, length, depth, correct, reply
    perplexity: dict[int, dict[str, float]] = field(default_factory=dict)  # bucket -> answer/context ppl
    qa: dict[int, dict[str, float]] = field(default_factory=dict)  # bucket -> em/f1/n

    def accuracy(self) -> dict[tuple[int, float], float]:
        """Probe accuracy per (length, depth) cell."""
        cells = defaultdict(list)
        for p in self.probes:
            cells[(p["length"], p["depth"])].append(p["correct"])
        return {k: float(np.mean(v)) for k, v in sorted(cells.items())}

    def accuracy_by_length(self) -> dict[int, float]:
        """Probe accuracy per length."""
        rows = defaultdict(list)
        for p in self.probes:
            rows[p["length"]].append(p["correct"])
        return {k: float(np.mean(v)) for k, v in sorted(rows.items())}


def load_model(base: str, adapter: str | Path | None, device: str, dtype: torch.dtype):
    """Base model, optionally with an adapter (its saved RoPE applied), in eval mode."""
    from transformers import AutoModelForCausalLM

    from trainer.model import load_adapter

    if adapter is not None:
        return load_adapter(base, adapter, device=device, dtype=dtype)
    from pipeline.assets import MODEL_LOAD_LOCK

    with MODEL_LOAD_LOCK:
        return AutoModelForCausalLM.from_pretrained(base, dtype=dtype, use_safetensors=True).to(device).eval()


@torch.inference_mode()
def generate(
    model, fmt: ChatFormatter, prompts: Sequence[str], max_new_tokens: int, batch_size: int
) -> list[str]:
    """Greedy batched generation with the KV cache (left padding, prompts sorted by length)."""
    tok = fmt.hf
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(
            device
        )
        gen = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            use_cache=True,
        )
        for i, row in zip(idx, gen[:, enc["input_ids"].shape[1] :], strict=True):
            out[i] = tok.decode(row, skip_special_tokens=True)
    return out


def run_probes(model, fmt: ChatFormatter, probes: Sequence[Probe], batch_size: int = 4) -> list[dict]:
    """Prompt every probe and score the reply exactly."""
    prompts = [fmt.prompt_text(p.record.context, p.record.question) for p in probes]
    replies = generate(model, fmt, prompts, max_new_tokens=24, batch_size=batch_size)
    return [
        {
            "task": p.record.task_type.value,
            "length": p.length,
            "depth": p.depth,
            "expected": p.expected,
            "reply": r.strip()[:200],
            "correct": score(p.expected, r),
        }
        for p, r in zip(probes, replies, strict=True)
    ]


@torch.inference_mode()
def perplexity(model, rows: Sequence[tuple[np.ndarray, np.ndarray, int]]) -> dict[int, dict[str, float]]:
    """Answer-token and other-token perplexity per bucket for ``(input_ids, loss_weights, bucket)`` rows."""
    device = next(model.parameters()).device
    sums: dict[int, list[float]] = defaultdict(lambda: [0.0, 0, 0.0, 0])
    for ids, weights, bucket in rows:
        x = torch.tensor(np.asarray(ids), dtype=torch.long, device=device)[None]
        logits = model(input_ids=x).logits[0, :-1].float()
        ce = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="none").cpu().numpy()
        answer = np.asarray(weights)[1:] > 0
        acc = sums[bucket]
        acc[0] += float(ce[answer].sum())
        acc[1] += int(answer.sum())
        acc[2] += float(ce[~answer].sum())
        acc[3] += int((~answer).sum())
    return {
        b: {"answer_ppl": math.exp(a / max(n, 1)), "context_ppl": math.exp(c / max(m, 1)), "answer_tokens": n}
        for b, (a, n, c, m) in sorted(sums.items())
    }


def qa_accuracy(
    model, fmt: ChatFormatter, records: Sequence[QARecord], batch_size: int = 4
) -> dict[int, dict[str, float]]:
    """Exact match and token F1 of greedy answers, per target context length of the records."""
    prompts = [fmt.prompt_text(r.context, r.question) for r in records]
    replies = generate(model, fmt, prompts, max_new_tokens=64, batch_size=batch_size)
    per: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for rec, reply in zip(records, replies, strict=True):
        bucket = rec.target_tokens
        em = float(normalize(reply).strip(" .") == normalize(rec.answer).strip(" ."))
        per[bucket].append((em, token_f1(reply, rec.answer)))
    return {
        b: {"em": float(np.mean([e for e, _ in v])), "f1": float(np.mean([f for _, f in v])), "n": len(v)}
        for b, v in sorted(per.items())
    }
