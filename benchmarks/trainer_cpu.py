"""Trainer CPU benchmarks: packed vs padded throughput, pack fill, memory vs sequence length.

* Throughput: the same samples (real length distribution of a lengthwise build) trained as
  isolation-packed 2048-token packs vs batches padded to their longest sample, with a small random
  Llama (SmolLM2's vocabulary) + LoRA, forward + backward, tokens of real data per second.
* Pack fill: best-fit-decreasing on the real length distribution at every stage length.
* Memory: peak RSS growth of one LoRA step at 1K-8K tokens (each in a fresh process).
Run: ``python benchmarks/trainer_cpu.py``.
"""

from __future__ import annotations

import json
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


def throughput(lengths: np.ndarray, n: int = 120) -> dict:
    import torch

    from trainer.batch import collate
    from trainer.loss import weighted_loss
    from trainer.model import hidden_and_head
    from trainer.packing import pack_bfd

    rng = np.random.default_rng(1)
    sample_lengths = [int(x) for x in rng.choice(lengths[lengths <= 2048], n)]
    samples = [
        (rng.integers(3, 49000, k), np.r_[np.zeros(k - 32), np.ones(32)].astype(np.float32))
        for k in sample_lengths
    ]
    m = model(49152)
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
    real = sum(sample_lengths)

    def run_packed():
        for pack in pack_bfd(sample_lengths, 2048):
            b = collate([samples[i] for i in pack], "token", 1, 1.0)
            hidden, head = hidden_and_head(m, b.input_ids, b.position_ids)
            weighted_loss(hidden, head, b.targets, b.target_weights).backward()
            opt.step()
            opt.zero_grad()

    def run_padded(batch: int = 4):
        order = list(range(n))  # data order, as a plain DataLoader would see it
        for s in range(0, n, batch):
            idx = order[s : s + batch]
            longest = max(sample_lengths[i] for i in idx)
            ids = torch.zeros(len(idx), longest, dtype=torch.long)
            mask = torch.zeros(len(idx), longest, dtype=torch.long)
            labels = torch.full((len(idx), longest), -100)
            for r, i in enumerate(idx):
                k = sample_lengths[i]
                ids[r, :k] = torch.from_numpy(samples[i][0])
                mask[r, :k] = 1
                labels[r, k - 32 : k] = ids[r, k - 32 : k]
            m(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            opt.step()
            opt.zero_grad()

    out = {}
    for name, fn in (("packed", run_packed), ("padded", run_padded)):
        t = time.perf_counter()
        fn()
        wall = time.perf_counter() - t
        out[name] = {"wall_s": round(wall, 2), "real_tokens_per_s": round(real / wall, 1)}
    out["speedup"] = round(out["packed"]["real_tokens_per_s"] / out["padded"]["real_tokens_per_s"], 2)
    out["samples"], out["real_tokens"] = n, real
    return out


MEM = """
import sys, threading, time, psutil, torch
sys.path.insert(0, {repo!r})
from benchmarks.trainer_cpu import model
from trainer.batch import collate
from trainer.loss import weighted_loss
from trainer.model import hidden_and_head
import numpy as np
L = int(sys.argv[1])
m = model(49152)
m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={{"use_reentrant": False}}); m.enable_input_require_grads()
proc = psutil.Process()
base = proc.memory_info().rss
peak = [base]
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss); time.sleep(0.002)
threading.Thread(target=sample, daemon=True).start()
b = collate([(np.random.default_rng(0).integers(3, 49000, L), np.ones(L, np.float32))], "token", 1, float(L))
hidden, head = hidden_and_head(m, b.input_ids, b.position_ids)
weighted_loss(hidden, head, b.targets, b.target_weights, 1024).backward()
done.set(); time.sleep(0.01)
print((peak[0] - base) / 2**20)
"""


def memory() -> list[dict]:
    rows = []
    for L in (1024, 2048, 4096, 8192):
        out = (
            subprocess.run(
                [sys.executable, "-c", MEM.format(repo=str(REPO)), str(L)],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        rows.append({"tokens": L, "peak_rss_growth_mb": round(float(out), 1)})
    for a, b in zip(rows, rows[1:], strict=False):
        b["ratio_vs_half"] = round(b["peak_rss_growth_mb"] / max(a["peak_rss_growth_mb"], 1e-9), 2)
    return rows


def main() -> None:
    from trainer.packing import fill, pack_bfd

    if "--memory-only" in sys.argv:
        old = json.loads(OUT.read_text())
        old["memory"] = memory()
        print(json.dumps(old["memory"], indent=1))
        OUT.write_text(json.dumps(old, indent=1) + "\n")
        return

    with tempfile.TemporaryDirectory() as tmp:
        lengths, _ = real_lengths(Path(tmp))
    fills = {}
    for cap in (512, 1024, 2048, 4096, 8192):
        sub = [int(x) for x in lengths if x <= cap]
        fills[cap] = round(fill(pack_bfd(sub, cap), sub, cap), 4) if sub else None
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "samples": len(lengths),
        "pack_fill_bfd": fills,
        "throughput_2048": throughput(lengths),
        "memory": memory(),
    }
    print(json.dumps(result, indent=1))
    OUT.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
