"""Boundary recovery of the semantic chunker on synthetic topic mixes, and speed."""

import random
import time

from pipeline.chunking import SemanticChunker, SentenceTransformerEmbedder
from pipeline.io.readers import read_documents

docs = [d.text for d in read_documents(["/work/shared/corpus/small"])]
rng = random.Random(0)


def paras(t):
    return [p for p in t.split("\n\n") if 15 < len(p.split()) < 120]


pools = [paras(t) for t in docs]
pools = [p for p in pools if len(p) >= 6]
samples = []
for _ in range(12):
    srcs = rng.sample(range(len(pools)), 4)
    parts = []
    for s in srcs:
        k = rng.randrange(0, len(pools[s]) - 3)
        parts.append("\n\n".join(pools[s][k : k + 3]))
    text = "\n\n".join(parts)
    cuts = []
    pos = 0
    for p in parts[:-1]:
        pos += len(p)
        cuts.append(pos)
        pos += 2
    samples.append((text, cuts))
emb = SentenceTransformerEmbedder()
for mu, L in [(32, 32), (48, 32), (64, 48), (96, 32)]:
    emb.max_seq_tokens = L
    emb._model = None
    ch = SemanticChunker(max_tokens=2048, min_tokens=32, embedder=emb, min_unit_tokens=mu)
    t = time.time()
    outs = ch.chunk_batch([s[0] for s in samples])
    dt = time.time() - t
    hit = tot = pred = 0
    for (text, cuts), o in zip(samples, outs):
        found = [c.char_start for c in o[1:]]
        pred += len(found)
        for c in cuts:
            tot += 1
            hit += any(abs(f - c) <= 3 for f in found)
    print(
        mu,
        L,
        f"{dt:.1f}s recall {hit / tot:.2f} precision {hit / max(pred, 1):.2f} chunks {pred}",
        flush=True,
    )
