"""One shared test: offsets, reconstruction and budget for every chunker x tokenizer x document."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.io.readers import InputProblem, read_documents
from tests.chunking.conftest import check_invariants, make_chunker

CHUNKERS = ["recursive", "sliding", "semantic"]
TOKENIZERS = ["smollm2-bpe", "minilm-wordpiece", "metaspace-bpe"]


@pytest.fixture(scope="module")
def sample_docs(sample_corpus):
    return [d for d in read_documents([sample_corpus]) if not isinstance(d, InputProblem)]


@pytest.mark.parametrize("tok_name", TOKENIZERS)
@pytest.mark.parametrize("kind", CHUNKERS)
def test_invariants_on_sample_corpus(kind, tok_name, tokenizers_by_name, sample_docs):
    chunker = make_chunker(kind, tokenizers_by_name[tok_name], max_tokens=256)
    docs = sample_docs if kind != "semantic" else sample_docs[:4]
    results = chunker.chunk_batch(docs, workers=1)
    for doc, chunks in zip(docs, results, strict=True):
        assert chunks, doc.source
        assert {c.doc_id for c in chunks} == {doc.doc_id}
        check_invariants(chunker, doc.text, chunks)
    again = chunker.chunk_batch(docs[:2], workers=1)
    assert again == results[:2], "chunking must be deterministic"


_ALPHABET = st.sampled_from(
    list("abcXYZ019 .,;:!?'\"()-")
    + [
        "\n",
        "\n\n",
        "\r\n",
        "\t",
        "  ",
        "# ",
        "\u00a0",
        "\u3000",
        "\u4e16",
        "\u3002",
        "\U0001f600",
        "\u00e9",
        "e\u0301",
        "\x1c",
        "\u2028",
        "====\n",
    ]
)
RANDOM_TEXT = st.lists(_ALPHABET, min_size=0, max_size=400).map("".join) | st.text(max_size=300)


@pytest.mark.parametrize("tok_name", TOKENIZERS)
@pytest.mark.parametrize("kind", CHUNKERS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=RANDOM_TEXT, max_tokens=st.integers(16, 48))
def test_invariants_on_random_unicode(kind, tok_name, tokenizers_by_name, text, max_tokens):
    chunker = make_chunker(kind, tokenizers_by_name[tok_name], max_tokens)
    chunks = chunker(text)
    check_invariants(chunker, text, chunks)
    assert bool(chunks) == bool(text)
