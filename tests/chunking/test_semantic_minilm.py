"""The semantic chunker with the real packaged MiniLM: topic shifts become chunk boundaries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.chunking import OnnxEmbedder, SemanticChunker, SentenceTransformerEmbedder
from pipeline.errors import ConfigError
from tests.chunking.conftest import check_invariants


@pytest.fixture(scope="module")
def minilm():
    return SentenceTransformerEmbedder()


@pytest.fixture(scope="module")
def minilm_int8():
    return OnnxEmbedder()  # exported and quantized once into the user cache


def _paragraphs(path, n: int, skip: int = 0) -> list[str]:
    paras = [p.strip() for p in path.read_text().split("\n\n") if 25 < len(p.split()) < 150]
    return paras[skip : skip + n]


@pytest.mark.parametrize("backend", ["torch", "onnx-int8"])
def test_cuts_fall_on_topic_changes(backend, request, sample_corpus, smol_tokenizer):
    embedder = request.getfixturevalue("minilm" if backend == "torch" else "minilm_int8")
    # Three real topics back to back: Node's event emitters, a software license, Python's logging.
    parts = [
        "\n\n".join(_paragraphs(sample_corpus / "nodejs-events.md", 4, skip=2)),
        "\n\n".join(_paragraphs(sample_corpus / "license-Apache-2.0.txt", 4, skip=2)),
        "\n\n".join(_paragraphs(sample_corpus / "python-howto-logging.rst", 4, skip=3)),
    ]
    text = "\n\n".join(parts)
    true_cuts = [len(parts[0]), len(parts[0]) + 2 + len(parts[1])]
    chunker = SemanticChunker(
        tokenizer=smol_tokenizer,
        max_tokens=1024,
        min_tokens=32,
        embedder=embedder,
        threshold="percentile",
        threshold_amount=85,
    )
    chunks = chunker(text)
    check_invariants(chunker, text, chunks)
    found = [c.char_start for c in chunks[1:]]
    assert all(parts), "each topic needs text"
    for cut in true_cuts:
        nearest = min(abs(f - cut) for f in found)
        assert nearest <= 5, f"no chunk boundary at the topic change {cut}: {found}"


@pytest.mark.parametrize("mode", ["percentile", "stddev", "interquartile", "gradient"])
def test_threshold_modes_keep_hard_limits(mode, minilm, sample_corpus, smol_tokenizer):
    text = (sample_corpus / "python-tutorial-classes.rst").read_text()[:20000]
    chunker = SemanticChunker(tokenizer=smol_tokenizer, max_tokens=200, embedder=minilm, threshold=mode)
    chunks = chunker(text, fmt="rst")
    check_invariants(chunker, text, chunks)
    sizes = np.array([c.token_count for c in chunks])
    assert (sizes[:-1] >= chunker.min_tokens).mean() > 0.9


def test_each_unit_embedded_once(sample_corpus, smol_tokenizer):
    calls = []

    class Counting(SentenceTransformerEmbedder):
        def encode(self, texts):
            calls.append(list(texts))
            return super().encode(texts)

    chunker = SemanticChunker(tokenizer=smol_tokenizer, max_tokens=256, embedder=Counting())
    docs = [(sample_corpus / n).read_text()[:8000] for n in ("license-MPL-2.0.txt", "nodejs-url.md")]
    chunker.chunk_batch(docs)
    assert len(calls) == 1, "all documents' units go through one batched call"
    assert len(calls[0]) == len(set(calls[0])) or len(calls[0]) > 10


def test_onnx_int8_embeddings_match_sentence_transformers(minilm, minilm_int8, sample_corpus):
    texts = _paragraphs(sample_corpus / "python-howto-logging.rst", 40) + ["", "x", "日本語のテキスト 🎉"]
    ref, fast = minilm.encode(texts), minilm_int8.encode(texts)
    assert fast.shape == ref.shape and np.allclose(np.linalg.norm(fast, axis=1), 1, atol=1e-5)
    cos = (ref * fast).sum(1)
    assert cos.min() > 0.95 and cos.mean() > 0.985
    # What the chunker uses: similarities between neighbours agree closely.
    ref_sims, fast_sims = (ref[1:] * ref[:-1]).sum(1), (fast[1:] * fast[:-1]).sum(1)
    assert np.corrcoef(ref_sims, fast_sims)[0, 1] > 0.98


def test_onnx_embedder_refuses_models_it_cannot_mirror(tmp_path):
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ConfigError, match="use SentenceTransformerEmbedder"):
        OnnxEmbedder(str(tmp_path))
