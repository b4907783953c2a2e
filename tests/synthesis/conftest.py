from __future__ import annotations

import pytest

from pipeline.chat import ChatFormatter
from pipeline.config import ChunkerConfig
from pipeline.stages.chunk import chunk_corpus


@pytest.fixture(scope="session")
def formatter():
    return ChatFormatter()


@pytest.fixture(scope="session")
def small_chunks(tmp_path_factory, sample_corpus):
    """Chunks of three short sample documents (legal, reST, Markdown)."""
    src = tmp_path_factory.mktemp("docs")
    for name in ("license-Apache-2.0.txt", "python-tutorial-classes.rst", "nodejs-url.md"):
        (src / name).write_text((sample_corpus / name).read_text())
    out = tmp_path_factory.mktemp("chunks")
    chunk_corpus([src], out, ChunkerConfig(max_tokens=384))
    return out
