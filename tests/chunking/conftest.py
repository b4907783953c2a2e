"""Tokenizers and chunkers shared by the chunking tests."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from pipeline import assets
from pipeline.chunking import HashingEmbedder, RecursiveChunker, SemanticChunker, SlidingWindowChunker
from pipeline.tokenizer import load_tokenizer


@pytest.fixture(scope="session")
def metaspace_tokenizer(sample_corpus):
    """A SentencePiece-style BPE (Metaspace pre-tokenizer) trained on the fly.

    Its counts do not add up across whitespace cuts, so it exercises the re-counting path.
    """
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    texts = [p.read_text() for p in sorted(sample_corpus.glob("*"))][:4]
    tk.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=2000, special_tokens=["<unk>"]))
    return load_tokenizer(tk)


@pytest.fixture(scope="session")
def tokenizers_by_name(smol_tokenizer, metaspace_tokenizer):
    return {
        "smollm2-bpe": smol_tokenizer,
        "minilm-wordpiece": load_tokenizer(str(assets.minilm_path())),
        "metaspace-bpe": metaspace_tokenizer,
    }


def make_chunker(kind: str, tokenizer, max_tokens: int):
    if kind == "recursive":
        return RecursiveChunker(tokenizer=tokenizer, max_tokens=max_tokens)
    if kind == "sliding":
        return SlidingWindowChunker(tokenizer=tokenizer, max_tokens=max_tokens)
    return SemanticChunker(tokenizer=tokenizer, max_tokens=max_tokens, embedder=HashingEmbedder())


def check_invariants(chunker, text: str, chunks) -> None:
    """The contract every chunker keeps, re-checked from scratch."""
    assert all(text[c.char_start : c.char_end] == c.text for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    recount = chunker.tokenizer.count_batch([c.text for c in chunks])
    assert [c.token_count for c in chunks] == recount
    assert max(recount, default=0) <= chunker.max_tokens
    assert all(c.token_end - c.token_start == c.token_count for c in chunks)
    if chunker.name != "sliding":  # non-overlapping chunkers tile the text byte for byte
        assert "".join(c.text for c in chunks) == text
        assert all(a.char_end == b.char_start for a, b in zip(chunks, chunks[1:], strict=False))
    elif text:
        assert chunks[0].char_start == 0 and chunks[-1].char_end == len(text)
        assert all(b.char_start > a.char_start for a, b in zip(chunks, chunks[1:], strict=False))
