"""Semantic chunking quality proxy: do cuts land on real topic changes, and at what cost?

Builds documents from 4 runs of 3 paragraphs taken from different corpus documents; a true
boundary is found when a chunk starts within 3 characters of it. Compares unit sizes and
embedding truncation of lengthwise's SemanticChunker with the packaged MiniLM.
Run: ``python benchmarks/semantic_boundaries.py``.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.chunking import OnnxEmbedder, SemanticChunker, SentenceTransformerEmbedder  # noqa: E402
from pipeline.io.readers import InputProblem, read_documents  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "semantic_boundaries.json"
# (min_unit_tokens, embed max tokens, embedder backend)
CONFIGS = [
    (16, 128, "torch"),
    (32, 64, "torch"),
    (64, 48, "torch"),
    (64, 32, "torch"),
    (96, 32, "torch"),
    (32, 64, "onnx-int8"),
    (64, 48, "onnx-int8"),
]


def topic_mixes(corpus: Path, n: int = 12, seed: int = 0) -> list[tuple[str, list[int]]]:
    docs = [d.text for d in read_documents([corpus]) if not isinstance(d, InputProblem)]
    pools = [[p for p in t.split("\n\n") if 15 < len(p.split()) < 120] for t in docs]
    pools = [p for p in pools if len(p) >= 6]
    rng = random.Random(seed)
    samples = []
    for _ in range(n):
        parts = []
        for s in rng.sample(range(len(pools)), 4):
            k = rng.randrange(0, len(pools[s]) - 3)
            parts.append("\n\n".join(pools[s][k : k + 3]))
        cuts, pos = [], 0
        for p in parts[:-1]:
            pos += len(p)
            cuts.append(pos)
            pos += 2
        samples.append(("\n\n".join(parts), cuts))
    return samples


def main() -> None:
    corpus = REPO.parent / "shared" / "corpus" / "small"
    samples = topic_mixes(corpus if corpus.exists() else REPO / "samples" / "corpus")
    rows = []
    for unit, trunc, backend in CONFIGS:
        emb = (
            SentenceTransformerEmbedder(max_seq_tokens=trunc)
            if backend == "torch"
            else OnnxEmbedder(max_seq_tokens=trunc)
        )
        chunker = SemanticChunker(max_tokens=2048, min_tokens=32, embedder=emb, min_unit_tokens=unit)
        chunker.chunk_batch([samples[0][0]])  # warm up: model load
        t0 = time.perf_counter()
        outs = chunker.chunk_batch([s[0] for s in samples])
        wall = time.perf_counter() - t0
        hits = predicted = total = 0
        for (_, cuts), chunks in zip(samples, outs, strict=True):
            found = [c.char_start for c in chunks[1:]]
            predicted += len(found)
            total += len(cuts)
            hits += sum(any(abs(f - c) <= 3 for f in found) for c in cuts)
        recall, precision = hits / total, hits / max(predicted, 1)
        row = {
            "min_unit_tokens": unit,
            "embed_max_tokens": trunc,
            "backend": backend,
            "wall_s": round(wall, 2),
            "recall": round(recall, 3),
            "precision": round(precision, 3),
            "f1": round(2 * recall * precision / max(recall + precision, 1e-9), 3),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    OUT.write_text(json.dumps({"samples": len(samples), "results": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
