"""Chunkers with exact character spans and a hard budget in the student model's tokens.

Usable on their own::

    from pipeline.chunking import RecursiveChunker
    chunks = RecursiveChunker(tokenizer="path/to/tokenizer.json", max_tokens=512)(text)
    assert all(text[c.char_start:c.char_end] == c.text for c in chunks)
"""

from pipeline.chunking.base import BaseChunker
from pipeline.chunking.embedders import Embedder, HashingEmbedder, SentenceTransformerEmbedder
from pipeline.chunking.onnx_embedder import OnnxEmbedder
from pipeline.chunking.recursive import RecursiveChunker
from pipeline.chunking.semantic import SemanticChunker
from pipeline.chunking.sliding import SlidingWindowChunker

__all__ = [
    "BaseChunker",
    "Embedder",
    "HashingEmbedder",
    "OnnxEmbedder",
    "RecursiveChunker",
    "SemanticChunker",
    "SentenceTransformerEmbedder",
    "SlidingWindowChunker",
]
