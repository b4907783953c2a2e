"""Hostile inputs: each either chunks correctly (in linear time) or fails naming the file."""

from __future__ import annotations

import pytest

from pipeline.chunking import RecursiveChunker, SlidingWindowChunker
from pipeline.config import ChunkerConfig
from pipeline.errors import ConfigError
from pipeline.stages.chunk import chunk_corpus
from tests.chunking.conftest import check_invariants, make_chunker

CASES = {
    "cjk": "\u4eca\u65e5\u306f\u826f\u3044\u5929\u6c17\u3067\u3059\u3002" * 400,
    "emoji": "\U0001f600\U0001f44d\U0001f3fd \U0001f469\u200d\U0001f4bb " * 300,
    "crlf": "line one\r\nline two.\r\n\r\nNext paragraph here.\r\n" * 200,
    "only_headings": "\n".join(f"{'#' * (1 + i % 3)} Heading {i}" for i in range(500)),
    "rst_headings": "\n\n".join(f"Title {i}\n{'=' * 9}\n\nBody {i}." for i in range(200)),
    "no_newline_at_end": "word " * 2000 + "end",
    "whitespace_only": " \n\t " * 50,
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kind", ["recursive", "sliding", "semantic"])
def test_hostile_texts_chunk_correctly(kind, case, smol_tokenizer):
    chunker = make_chunker(kind, smol_tokenizer, max_tokens=64)
    text = CASES[case]
    check_invariants(chunker, text, chunker(text))


def test_ten_megabyte_line_without_spaces(smol_tokenizer):
    text = "abcdefghij" * 1_000_000
    chunker = RecursiveChunker(tokenizer=smol_tokenizer, max_tokens=512)
    chunks = chunker(text)
    assert "".join(c.text for c in chunks) == text
    assert max(c.token_count for c in chunks) <= 512
    sample = chunks[:: max(1, len(chunks) // 50)]
    assert smol_tokenizer.count_batch([c.text for c in sample]) == [c.token_count for c in sample]


def test_headings_become_section_paths(smol_tokenizer):
    text = (
        "# Guide\n\nIntro text.\n\n## Install\n\n"
        + "Run the installer now. " * 200
        + "\n\n## Use\n\nCall it.\n"
    )
    chunks = RecursiveChunker(tokenizer=smol_tokenizer, max_tokens=128)(text, fmt="md")
    # The path is the heading trail in force where the chunk starts.
    for c in chunks:
        before = text[: c.char_start + 1]
        expected = ("Guide", "Install") if "## Install" in before else ("Guide",)
        if "## Use" in before:
            expected = ("Guide", "Use")
        assert tuple(c.section_path) == expected, (c.char_start, c.section_path)
    assert any(tuple(c.section_path) == ("Guide", "Install") for c in chunks)


def test_no_tiny_tail_chunks(smol_tokenizer):
    text = "A sentence that goes on for a while. " * 300
    chunks = RecursiveChunker(tokenizer=smol_tokenizer, max_tokens=512)(text)
    sizes = [c.token_count for c in chunks]
    assert min(sizes) >= 0.6 * max(sizes), sizes


@pytest.mark.parametrize("kwargs", [{"max_tokens": 4}, {"max_tokens": 64, "min_tokens": 100}])
def test_bad_parameters_fail_at_construction(kwargs, smol_tokenizer):
    with pytest.raises(ConfigError):
        RecursiveChunker(tokenizer=smol_tokenizer, **kwargs)
    with pytest.raises(ConfigError):
        SlidingWindowChunker(tokenizer=smol_tokenizer, max_tokens=64, stride_tokens=100)


def test_bad_files_do_not_lose_good_chunks(tmp_path, sample_corpus):
    src = tmp_path / "in"
    src.mkdir()
    (src / "good.md").write_text((sample_corpus / "nodejs-url.md").read_text())
    (src / "empty.txt").write_text("")
    (src / "binary.txt").write_bytes(bytes(range(256)) * 10)
    (src / "bad_utf8.txt").write_bytes(b"ok text \xff\xfe more")
    result = chunk_corpus([src], tmp_path / "out", ChunkerConfig(max_tokens=256))
    assert result.stats.chunks > 10 and result.stats.over_limit == 0
    skipped = {p.source.rsplit("/", 1)[-1] for p in result.problems}
    assert skipped == {"empty.txt", "binary.txt", "bad_utf8.txt"}
    assert [d.name for d in result.manifest.dropped] == ["bad_input"] and result.manifest.dropped[
        0
    ].count == 3


def test_streaming_matches_invariants_with_flat_memory(tmp_path, smol_tokenizer, sample_corpus):
    text = (sample_corpus / "kjv-genesis.txt").read_text()
    path = tmp_path / "big.txt"
    path.write_text(text)
    chunker = RecursiveChunker(tokenizer=smol_tokenizer, max_tokens=256)
    streamed = list(
        chunker.stream(
            iter([text[i : i + 5000] for i in range(0, len(text), 5000)]), doc_id="doc-x", window_chars=40_000
        )
    )
    check_invariants(chunker, text, streamed)
    from_file = list(chunker.stream_file(path, block_chars=30_000))
    assert "".join(c.text for c in from_file) == text
    assert from_file[0].doc_id == chunker(text)[0].doc_id  # same ID as the in-memory path


def test_parallel_batch_equals_sequential(smol_tokenizer, sample_corpus):
    from pipeline.io.readers import read_documents

    docs = list(read_documents([sample_corpus]))
    chunker = RecursiveChunker(tokenizer=smol_tokenizer, max_tokens=512)
    import pipeline.chunking.base as base

    old = base._PARALLEL_MIN_CHARS
    base._PARALLEL_MIN_CHARS = 0  # force the process pool on this small corpus
    try:
        parallel = chunker.chunk_batch(docs, workers=3)
    finally:
        base._PARALLEL_MIN_CHARS = old
    assert parallel == chunker.chunk_batch(docs, workers=1)
