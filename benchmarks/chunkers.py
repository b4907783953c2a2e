"""Chunker benchmark: lengthwise vs semchunk, semantic-text-splitter, chonkie and LangChain.

Same tokenizer (SmolLM2's tokenizer.json) and the same chunk size for everyone; chunks are
re-tokenized with it to count violations. Throughput is source MB (and k tokens) per second of
wall time and per CPU-second. Run: ``python benchmarks/chunkers.py`` (needs the ``bench`` extra).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline import assets  # noqa: E402
from pipeline.io.readers import InputProblem, read_documents  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "chunkers.json"


def load_corpus(path: Path) -> list[str]:
    return [d.text for d in read_documents([path]) if not isinstance(d, InputProblem)]


def _cpu() -> float:
    """CPU seconds of this process and its (finished) worker processes."""
    import resource

    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def timed(fn):
    t0, c0 = time.perf_counter(), _cpu()
    out = fn()
    return out, time.perf_counter() - t0, _cpu() - c0


def measure(name, fn, texts, tk, size):
    fn(texts[:1])  # warm up (lazy loads, caches)
    chunks, wall, cpu = timed(lambda: fn(texts))
    flat = [c for doc in chunks for c in doc]
    counts = (
        np.array([len(e) for e in tk.encode_batch_fast(flat, add_special_tokens=False)])
        if flat
        else np.zeros(1)
    )
    mb = sum(len(t.encode()) for t in texts) / 1e6
    ktok = sum(len(e) for e in tk.encode_batch_fast(texts, add_special_tokens=False)) / 1e3
    exact = sum("".join(doc) == t for doc, t in zip(chunks, texts, strict=True))
    return {
        "contender": name,
        "size": size,
        "docs": len(texts),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "mb_per_s": round(mb / wall, 3),
        "ktok_per_s": round(ktok / wall, 1),
        "ktok_per_cpu_s": round(ktok / cpu, 1),
        "chunks": len(flat),
        "mean_tok": round(float(counts.mean()), 1),
        "p95_tok": float(np.percentile(counts, 95)),
        "max_tok": int(counts.max()),
        "pct_over": round(100 * float((counts > size).mean()), 2),
        "p95_over_mean": round(float(np.percentile(counts, 95) / counts.mean()), 3),
        "exact_concat": f"{exact}/{len(texts)}",
    }


def structural_contenders(tok_path: str, size: int):
    from tokenizers import Tokenizer

    from pipeline.chunking import RecursiveChunker

    tk = Tokenizer.from_file(tok_path)
    ours = RecursiveChunker(tokenizer=tk, max_tokens=size)

    def lengthwise_batch(texts):
        return [[c.text for c in doc] for doc in ours.chunk_batch(texts)]

    def encode_batch(texts):  # the baseline: plain tokenization of the same text
        tk.encode_batch(texts, add_special_tokens=False)
        return [[t] for t in texts]

    import semchunk

    sc = semchunk.chunkerify(tk, size)

    def semchunk_run(texts):
        return sc(texts, processes=os.cpu_count() if len(texts) > 1 else 1)

    def semchunk_single(texts):
        return [sc(t) for t in texts]

    from semantic_text_splitter import TextSplitter

    ts = TextSplitter.from_huggingface_tokenizer(tk, size, trim=False)

    def text_splitter(texts):
        return ts.chunk_all(texts)

    from chonkie import RecursiveChunker as ChonkieRecursive

    ck = ChonkieRecursive(tokenizer=tk, chunk_size=size)

    def chonkie_recursive(texts):
        return [[c.text for c in ck.chunk(t)] for t in texts]

    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=tk)
    lc = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(hf, chunk_size=size, chunk_overlap=0)

    def langchain(texts):
        return [lc.split_text(t) for t in texts]

    return tk, [
        ("encode_batch (baseline)", encode_batch),
        ("lengthwise.RecursiveChunker", lengthwise_batch),
        ("semchunk (processes=all)", semchunk_run),
        ("semchunk (one process)", semchunk_single),
        ("semantic-text-splitter chunk_all", text_splitter),
        ("chonkie.RecursiveChunker", chonkie_recursive),
        ("langchain RecursiveCharacterTextSplitter", langchain),
    ]


def semantic_contenders(tok_path: str, size: int):
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    from pipeline.chunking import OnnxEmbedder, SemanticChunker, SentenceTransformerEmbedder

    tk = Tokenizer.from_file(tok_path)
    st = SentenceTransformer(str(assets.minilm_path()), device="cpu")
    emb = SentenceTransformerEmbedder()
    emb._model = st
    emb._model.max_seq_length = emb.max_seq_tokens
    ours = SemanticChunker(tokenizer=tk, max_tokens=size, embedder=emb)
    ours_int8 = SemanticChunker(tokenizer=tk, max_tokens=size, embedder=OnnxEmbedder())

    def lengthwise_semantic(texts):
        return [[c.text for c in doc] for doc in ours.chunk_batch(texts)]

    def lengthwise_semantic_int8(texts):
        return [[c.text for c in doc] for doc in ours_int8.chunk_batch(texts)]

    from chonkie import SemanticChunker as ChonkieSemantic
    from chonkie.embeddings import SentenceTransformerEmbeddings

    st2 = SentenceTransformer(str(assets.minilm_path()), device="cpu")
    ck = ChonkieSemantic(embedding_model=SentenceTransformerEmbeddings(st2), chunk_size=size)

    def chonkie_semantic(texts):
        return [[c.text for c in ck.chunk(t)] for t in texts]

    return tk, [
        ("lengthwise.SemanticChunker (MiniLM)", lengthwise_semantic),
        ("lengthwise.SemanticChunker (MiniLM, ONNX int8)", lengthwise_semantic_int8),
        ("chonkie.SemanticChunker (MiniLM)", chonkie_semantic),
    ]


def main() -> None:
    tok_path = str(assets.smollm2_path() / "tokenizer.json")
    corpora = {"sample": REPO / "samples" / "corpus"}
    shared = REPO.parent / "shared" / "corpus" / "small"
    if shared.exists():
        corpora["shared-small"] = shared
    # --semantic-only reruns the semantic rows and keeps the structural rows of the last full run.
    semantic_only = "--semantic-only" in sys.argv[1:]
    results = []
    if semantic_only:
        results = [r for r in json.loads(OUT.read_text())["results"] if r["kind"] != "semantic"]
        corpora = {}
    for cname, cpath in corpora.items():
        texts = load_corpus(cpath)
        for size in (512, 2048):
            tk, contenders = structural_contenders(tok_path, size)
            for name, fn in contenders:
                row = {"corpus": cname, "kind": "structural", **measure(name, fn, texts, tk, size)}
                print(json.dumps(row), flush=True)
                results.append(row)
    # Semantic: a subset (the peers embed 2-4x more text and run at a few hundred tokens/s).
    sample = load_corpus(REPO / "samples" / "corpus")
    subset = sorted(sample, key=len)[2:5]
    for size in (512, 2048):
        tk, contenders = semantic_contenders(tok_path, size)
        for name, fn in contenders:
            row = {"corpus": "sample-subset-3", "kind": "semantic", **measure(name, fn, subset, tk, size)}
            print(json.dumps(row), flush=True)
            results.append(row)
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "tokenizer": "SmolLM2-135M tokenizer.json",
    }
    OUT.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
