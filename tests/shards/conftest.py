from __future__ import annotations

import pytest

from pipeline.chat import ChatFormatter
from pipeline.config import ChunkerConfig
from pipeline.stages.chunk import chunk_corpus


@pytest.fixture(scope="session")
def formatter():
    return ChatFormatter()


@pytest.fixture(scope="session")
def small_chunks_for_shards(tmp_path_factory, sample_corpus):
    src = tmp_path_factory.mktemp("docs")
    for name in ("license-GPL-3.txt", "nodejs-url.md"):
        (src / name).write_text((sample_corpus / name).read_text())
    out = tmp_path_factory.mktemp("chunks")
    chunk_corpus([src], out, ChunkerConfig(max_tokens=512))
    return out
