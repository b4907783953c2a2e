"""Trainer CPU benchmarks: packed vs padded throughput, pack fill, memory vs sequence length.

* Throughput: the same samples (real length distribution of a lengthwise build, answer-only loss
  weights) trained three ways with the *same* chunked, answer-only loss: isolation-packed 2048-token
  packs (lengthwise attention), batches of 4 padded to their longest sample in random order, and
  length-grouped padded batches (sorted by length, batches shuffled: what a competent user does).
  Small random Llama (SmolLM2's vocabulary) + LoRA, forward + backward + step, real tokens per second.
  The three run interleaved in rounds so that load from other processes hits them alike.
* Pack fill: best-fit-decreasing on the real length distribution at every stage length.
* Memory: peak RSS growth of one LoRA step (fresh process each) for packs of several samples and for
  single sequences, 4K-64K tokens, tiny Llama (hidden 64, 2 layers, SmolLM2's vocabulary), activation
  checkpointing, chunked CE; plus transformers' own SDPA on packs (boundaries inferred from position
  resets with a dense [L, L] mask), the path lengthwise used before, up to 16K.
Run: ``python benchmarks/trainer_cpu.py [--memory[=packed|single|dense] [--tokens=65536,...]] [--throughput] [--fill]``
(no flag: all). Each memory series is saved as it goes (``memory_<series>`` in the JSON).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "benchmarks" / "results" / "trainer_cpu.json"


def real_lengths(tmp: Path) -> np.ndarray:
    """Example lengths of a teacher-free + self-instruct-shaped build over the sample corpus."""
    from pipeline.config import ChunkerConfig, ShardConfig, SynthConfig, TeacherConfig
    from pipeline.stages.chunk import chunk_corpus
    from pipeline.stages.shard import build_shards
    from pipeline.stages.synth import synthesize_corpus

    chunk_corpus([REPO / "samples" / "corpus"], tmp / "chunks", ChunkerConfig(max_tokens=512))
    lengths = list(np.random.default_rng(0).integers(300, 4000, 200))  # shape of assembled QA contexts
    synthesize_corpus(
        [tmp / "chunks"],
        tmp / "qa",
        SynthConfig(target_lengths=[600, 1000, 1500, 2000, 3000, 4000], teacher_free_per_length=6),
        TeacherConfig(kind="none"),
    )
    res = build_shards([tmp / "qa"], tmp / "shards", ShardConfig(bucket_edges=[512, 1024, 2048, 4096]))
    from data_contracts.reader import open_buckets

    built = open_buckets(tmp / "shards")["length"]
    return np.array(list(built) + lengths), res


def model(vocab: int):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16384,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    m = get_peft_model(
        LlamaForCausalLM(cfg), LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
    )
    m.train()
    return m


def _samples(lengths, seed=1):
    """Token ids plus answer-only loss weights (the last quarter, at least 16 tokens)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in lengths:
        w = np.zeros(k, np.float32)
        w[-max(16, k // 4) :] = 1.0
        out.append((rng.integers(3, 49000, k), w))
    return out


def _padded_step(m, batch_samples):
    """One padded batch: padding mask, then the same chunked answer-only loss as the packed path."""
    import torch

    from trainer.loss import weighted_loss

    longest = max(len(i) for i, _ in batch_samples)
    ids = torch.zeros(len(batch_samples), longest, dtype=torch.long)
    mask = torch.zeros_like(ids)
    targets = torch.zeros_like(ids)
    weights = torch.zeros(len(batch_samples), longest)
    for r, (i, w) in enumerate(batch_samples):
        k = len(i)
        ids[r, :k], mask[r, :k] = torch.from_numpy(i), 1
        targets[r, : k - 1] = torch.from_numpy(i[1:])
        weights[r, : k - 1] = torch.from_numpy(w[1:])
    weights /= weights.sum()
    base = m.get_base_model()
    hidden = base.get_decoder()(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
    head = base.get_output_embeddings().weight
    return weighted_loss(hidden, head, targets.flatten(), weights.flatten())


def throughput(lengths: np.ndarray, n: int = 96, batch: int = 4, rounds: int = 2) -> dict:
    import random

    import torch

    from trainer.batch import collate
    from trainer.loss import weighted_loss
    from trainer.model import batch_hidden_and_head, pick_attention
    from trainer.packing import pack_bfd

    rng = np.random.default_rng(1)
    sample_lengths = [int(x) for x in rng.choice(lengths[lengths <= 2048], n)]
    samples = _samples(sample_lengths)
    m = model(49152)
    m.get_base_model().config._attn_implementation = pick_attention("auto", torch.device("cpu"))
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
    real = sum(sample_lengths)
    computed = {}

    def step(loss):
        loss.backward()
        opt.step()
        opt.zero_grad()

    def run_packed():
        packs = pack_bfd(sample_lengths, 2048)
        computed["packed"] = len(packs) * 2048
        for pack in packs:
            b = collate([samples[i] for i in pack], "token", 1, 1.0)
            hidden, head = batch_hidden_and_head(m, b)
            step(weighted_loss(hidden, head, b.targets, b.target_weights))

    def batches(order):
        return [order[s : s + batch] for s in range(0, n, batch)]

    def run_padded(groups, name):
        computed[name] = sum(len(g) * max(sample_lengths[i] for i in g) for g in groups)
        for g in groups:
            step(_padded_step(m, [samples[i] for i in g]))

    random_order = list(range(n))
    random.Random(0).shuffle(random_order)
    grouped = batches(sorted(range(n), key=lambda i: sample_lengths[i]))
    random.Random(0).shuffle(grouped)
    contenders = {
        "packed": run_packed,
        "padded_random": lambda: run_padded(batches(random_order), "padded_random"),
        "padded_length_grouped": lambda: run_padded(grouped, "padded_length_grouped"),
    }
    walls = {k: [] for k in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            t = time.perf_counter()
            fn()
            walls[name].append(time.perf_counter() - t)
    out = {}
    for name in contenders:
        wall = min(walls[name])
        out[name] = {
            "wall_s": round(wall, 2),
            "real_tokens_per_s": round(real / wall, 1),
            "computed_tokens": computed[name],
            "padding_or_empty_share": round(1 - real / computed[name], 3),
        }
    for name in ("padded_random", "padded_length_grouped"):
        out[f"packed_vs_{name}"] = round(out["packed"]["real_tokens_per_s"] / out[name]["real_tokens_per_s"], 2)
    out.update(samples=n, real_tokens=real, batch=batch, rounds=rounds, timing="best of rounds")
    return out


MEM = """
import resource, sys, time
sys.path.insert(0, {repo!r})
import numpy as np, psutil, torch
from transformers import LlamaConfig, LlamaForCausalLM
from peft import LoraConfig, get_peft_model
from trainer.batch import collate
from trainer.loss import weighted_loss
from trainer.model import batch_hidden_and_head, enable_checkpointing, pick_attention
L, n_samples, attn = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=131072,
                  tie_word_embeddings=True)
m = LlamaForCausalLM(cfg)
m.config._attn_implementation = pick_attention("sdpa", torch.device("cpu")) if attn == "lengthwise" else "sdpa"
m = get_peft_model(m, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
enable_checkpointing(m)
rng = np.random.default_rng(0)
sizes = [L // n_samples] * n_samples
sizes[-1] += L - sum(sizes)
samples = [(rng.integers(3, 49000, k), np.r_[np.zeros(k - k // 4), np.ones(k // 4)].astype(np.float32)) for k in sizes]
b = collate(samples, "sequence", n_samples, 1.0)
base = psutil.Process().memory_info().rss
t = time.perf_counter()
hidden, head = batch_hidden_and_head(m, b)
weighted_loss(hidden, head, b.targets, b.target_weights, 1024).backward()
wall = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print((peak - base) / 2**20, wall)
"""


def _mem_run(tokens: int, n_samples: int, attn: str, timeout: int) -> dict:
    row = {"tokens": tokens, "samples": n_samples, "attention": attn}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", MEM.format(repo=str(REPO)), str(tokens), str(n_samples), attn],
            capture_output=True, text=True, check=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        row["error"] = f"not finished in {timeout} s"
        return row
    peak, wall = map(float, proc.stdout.strip().splitlines()[-1].split())
    row.update(peak_rss_growth_mb=round(peak, 1), wall_s=round(wall, 1))
    return row


SERIES = {  # layout, samples per pack, attention, longest run
    "packed": ("packed", lambda L: max(2, L // 4096), "lengthwise", 65536),
    "single": ("single", lambda L: 1, "lengthwise", 65536),
    "dense": ("packed", lambda L: max(2, L // 4096), "transformers_sdpa", 16384),
}


def memory(series: str, only: set[int] | None = None, timeout: int = 1500) -> list[dict]:
    """Peak memory rows of one series; ``only`` reruns some lengths and keeps the saved others."""
    layout, n_of, attn, top = SERIES[series]
    saved = json.loads(OUT.read_text()).get(f"memory_{series}", []) if OUT.exists() and only else []
    rows = []
    for L in (4096, 8192, 16384, 32768, 65536):
        if L > top:
            continue
        old = next((r for r in saved if r["tokens"] == L), None)
        row = old if old is not None and L not in only else _mem_run(L, n_of(L), attn, timeout)
        row["layout"] = layout
        if rows and "peak_rss_growth_mb" in row and "peak_rss_growth_mb" in rows[-1]:
            row["ratio_vs_half"] = round(row["peak_rss_growth_mb"] / rows[-1]["peak_rss_growth_mb"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
        _save(f"memory_{series}", rows)  # keep what finished
        if "error" in row:
            break
    return rows


def _save(key: str, value) -> None:
    old = json.loads(OUT.read_text()) if OUT.exists() else {}
    old[key] = value
    old["date"] = time.strftime("%Y-%m-%d")
    old["machine"] = f"{os.cpu_count()} CPUs, no GPU, shared with other jobs (wall times +-30% or worse)"
    OUT.write_text(json.dumps(old, indent=1) + "\n")


def main() -> None:
    from trainer.packing import fill, pack_bfd

    flags = {a.split("=")[0] for a in sys.argv[1:] if a.startswith("--")} or {"--memory", "--throughput", "--fill"}
    if "--memory" in flags:
        chosen = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--memory=")] or list(SERIES)
        only = {int(x) for a in sys.argv[1:] if a.startswith("--tokens=") for x in a[9:].split(",")} or None
        for series in chosen:
            memory(series, only)
    if flags & {"--throughput", "--fill"}:
        with tempfile.TemporaryDirectory() as tmp:
            lengths, _ = real_lengths(Path(tmp))
        if "--fill" in flags:
            fills = {}
            for cap in (512, 1024, 2048, 4096, 8192):
                sub = [int(x) for x in lengths if x <= cap]
                fills[cap] = round(fill(pack_bfd(sub, cap), sub, cap), 4) if sub else None
            _save("pack_fill_bfd", fills)
            _save("samples", len(lengths))
        if "--throughput" in flags:
            result = throughput(lengths)
            print(json.dumps(result, indent=1))
            _save("throughput_2048", result)


if __name__ == "__main__":
    main()
