"""Run probes and perplexity for a base model and its adapters (one base in memory, adapters swapped)."""

from __future__ import annotations

import contextlib
import copy
import json
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pipeline.chat import ChatFormatter
from pipeline.synthesis.grounding import normalize, token_f1
from trainer.evaluation.probes import Probe
from trainer.evaluation.progress import Progress
from trainer.evaluation.stats import Accuracy


@dataclass
class ModelResult:
    """Everything measured for one model (base or base + adapter)."""

    name: str
    probes: list[dict] = field(default_factory=list)  # task, length, depth, correct, ruler_score, reply
    perplexity: dict[int, dict[str, float]] = field(default_factory=dict)  # bucket -> answer/context ppl
    confidence: float = 0.95

    def _count(self, key) -> dict:
        cells: dict = defaultdict(lambda: [0, 0])
        for p in self.probes:
            c = cells[key(p)]
            c[0] += bool(p["correct"])
            c[1] += 1
        return {k: Accuracy(k_, n, self.confidence) for k, (k_, n) in sorted(cells.items(), key=_order)}

    def cells(self) -> dict[tuple[str, int, float | None], Accuracy]:
        """Accuracy per (task, length, depth) cell."""
        return self._count(lambda p: (p["task"], p["length"], p["depth"]))

    def by_length(self) -> dict[tuple[str, int], Accuracy]:
        """Accuracy per (task, length), depths pooled."""
        return self._count(lambda p: (p["task"], p["length"]))

    def pooled_by_length(self) -> dict[int, Accuracy]:
        """Accuracy per length over every task."""
        return self._count(lambda p: p["length"])

    @property
    def qa(self) -> dict[int, dict[str, float]]:
        """EM and token F1 of the QA probes' replies, per target length."""
        per: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for p in self.probes:
            if p["task"] == "qa":
                em = float(normalize(p["reply"]).strip(" .") == normalize(p["expected"]).strip(" ."))
                per[p["length"]].append((em, token_f1(p["reply"], p["expected"])))
        return {
            b: {"em": float(np.mean([e for e, _ in v])), "f1": float(np.mean([f for _, f in v])), "n": len(v)}
            for b, v in sorted(per.items())
        }


def _order(item):
    """Sort cell keys with ``None`` depths first and mixed types safely."""
    key = item[0] if isinstance(item[0], tuple) else (item[0],)
    return tuple((x is not None, x) for x in key)


# -- one base model, many adapters -----------------------------------------------------------------


def _rope_of(adapter: str | Path) -> dict | None:
    from trainer.model import ROPE_FILE

    path = Path(adapter) / ROPE_FILE
    return json.loads(path.read_text()) if path.exists() else None


class ModelPool:
    """The base model loaded once; adapters are loaded onto it and switched, never the base reloaded.

    ``activate(None)`` is the base (adapters disabled); ``activate(path)`` loads the adapter into the
    shared peft wrapper, makes it the active one and drops the previous adapter. An adapter saved with
    a RoPE change (``lengthwise_rope.json``) gets it applied first, and the base's RoPE is restored for
    the next model. Results equal loading the base and adapter fresh (tested).
    """

    def __init__(self, base: str, device: str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        from transformers import AutoModelForCausalLM

        from pipeline.assets import MODEL_LOAD_LOCK

        with MODEL_LOAD_LOCK:
            self.base = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, use_safetensors=True)
        self.base.to(device).eval()
        cfg = self.base.config
        self._original = (copy.deepcopy(getattr(cfg, "rope_parameters", None)), cfg.max_position_embeddings)
        self._rope: dict | None = None
        self.peft = None
        self._active: str | None = None
        self._count = 0

    def _set_rope(self, params: dict | None) -> None:
        from trainer.model import rebuild_rotary

        if params == self._rope:
            return
        cfg = self.base.config
        cfg.rope_parameters = copy.deepcopy(params if params is not None else self._original[0])
        cfg.max_position_embeddings = self._original[1]
        if params is not None and params.get("rope_type") not in (None, "default"):
            cfg.max_position_embeddings = int(
                params["original_max_position_embeddings"] * params.get("factor", 1.0)
            )
        rebuild_rotary(self.base)
        self._rope = params

    @contextlib.contextmanager
    def activate(self, adapter: str | Path | None) -> Iterator[torch.nn.Module]:
        """The model to evaluate: the base, or the base with ``adapter`` active."""
        self._set_rope(_rope_of(adapter) if adapter is not None else None)
        if adapter is None:
            if self.peft is None:
                yield self.base
            else:
                with self.peft.disable_adapter():
                    yield self.peft
            return
        self._count += 1
        name = f"eval{self._count}"
        if self.peft is None:
            from peft import PeftModel

            self.peft = PeftModel.from_pretrained(self.base, str(adapter), adapter_name=name)
        else:
            self.peft.load_adapter(str(adapter), adapter_name=name)
            self.peft.set_adapter(name)
            if self._active is not None:
                self.peft.delete_adapter(self._active)
        self._active = name
        self.peft.eval()
        yield self.peft


# -- generation ------------------------------------------------------------------------------------


def batches(lengths: Sequence[int], batch_size: int, slack: float = 0.05) -> list[list[int]]:
    """Indices grouped into batches of (nearly) equal token length.

    Prompts are sorted by length and a batch closes when it is full or the next prompt is more than
    ``slack`` (at least 32 tokens) longer than its shortest: probes of one grid length share batches,
    padding stays within the generator's tolerance, and no 512-token probe is padded to 2048.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out: list[list[int]] = []
    for i in order:
        cur = out[-1] if out else None
        if cur and len(cur) < batch_size and lengths[i] - lengths[cur[0]] <= max(32, slack * lengths[cur[0]]):
            cur.append(i)
        else:
            out.append([i])
    return out


@torch.inference_mode()
def generate(
    model,
    fmt: ChatFormatter,
    prompts: Sequence[str],
    max_new_tokens: int | Sequence[int],
    batch_size: int,
    progress: Progress | None = None,
) -> list[str]:
    """Greedy generation with the KV cache in equal-length batches (left padding within a batch).

    ``max_new_tokens`` may be given per prompt: a batch runs to the longest budget among its rows,
    each row is cut at its own budget, and every row stops at end of turn.
    """
    tok = fmt.hf
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    budgets = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    out: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device
    for idx in batches([len(x) for x in ids], batch_size):
        enc = tok.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt").to(device)
        gen = model.generate(
            **enc,
            max_new_tokens=max(budgets[i] for i in idx),
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            use_cache=True,
        )
        for i, row in zip(idx, gen[:, enc["input_ids"].shape[1] :], strict=True):
            # Each row keeps only its own budget, so a batch answers exactly as single prompts do.
            out[i] = tok.decode(row[: budgets[i]], skip_special_tokens=True)
        if progress is not None:
            progress.advance(len(idx))
    return out


def run_probes(
    model,
    fmt: ChatFormatter,
    probes: Sequence[Probe],
    batch_size: int = 4,
    margin: int = 8,
    progress: Progress | None = None,
) -> list[dict]:
    """Prompt every probe, stop each at its reference answer's length + ``margin`` tokens, score it."""
    prompts = [fmt.prompt_text(p.context, p.question) for p in probes]
    budgets = [fmt.count(p.answer) + 1 + margin for p in probes]  # +1: the end-of-turn token
    replies = generate(model, fmt, prompts, budgets, batch_size, progress)
    return [
        {
            "task": p.task,
            "length": p.length,
            "depth": p.depth,
            "qa_id": p.qa_id,
            "expected": p.refs[0] if len(p.refs) == 1 else list(p.refs),
            "reply": r.strip()[:300],
            **p.score(r),
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
