"""Sentence embedders for the semantic chunker, behind one small protocol."""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into L2-normalised vectors, one row per text."""

    name: str

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts``; returns an array of shape ``(len(texts), dim)`` with unit rows."""
        ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model (default: the packaged all-MiniLM-L6-v2).

    Also loads static model2vec folders (sentence-transformers wraps them as ``StaticEmbedding``),
    which are roughly 100x faster on CPU for bulk chunking. Texts are truncated to
    ``max_seq_tokens`` model tokens (default 48): a unit's opening carries its topic, and the cost
    is all in the model. On topic mixes of the sample corpus, 48 tokens of 64-token units found
    boundaries as well as whole units at a quarter of the cost (see benchmarks/README.md).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str | None = None,
        batch_size: int = 64,
        max_seq_tokens: int | None = 48,
        trust_remote_code: bool = False,
    ) -> None:
        from pipeline import assets

        self.path = assets.resolve_model(model if model is not None else assets.MINILM)
        self.name = str(model if model is not None else assets.MINILM)
        self.device = device
        self.batch_size = batch_size
        self.max_seq_tokens = max_seq_tokens
        self.trust_remote_code = trust_remote_code
        self._model = None

    def _load(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            from pipeline.assets import MODEL_LOAD_LOCK

            device = self.device or _default_device()
            with MODEL_LOAD_LOCK:
                self._model = SentenceTransformer(
                    self.path, device=device, trust_remote_code=self.trust_remote_code
                )
            if self.max_seq_tokens and getattr(self._model, "max_seq_length", None):
                self._model.max_seq_length = min(self._model.max_seq_length, self.max_seq_tokens)
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` in batches; rows are unit vectors."""
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        model = self._load()
        emb = model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(emb, dtype=np.float32)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_model"] = None  # reload in the receiving process instead of pickling torch modules
        return state


class HashingEmbedder:
    """Hashed bag-of-words vectors: no model, ~100k sentences/s, deterministic.

    A fast path for bulk semantic chunking where a neural model is too slow (and for tests of
    everything around the embeddings). Topic shifts show up as vocabulary shifts; the notes measured
    a TF-IDF baseline at 0.84 boundary AUC against MiniLM's 0.95, so prefer MiniLM when it fits.
    """

    name = "hashing-bow"

    def __init__(self, dim: int = 512) -> None:
        self.dim = dim

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` as L2-normalised hashed word counts (sublinear tf)."""
        import re
        import zlib

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, zlib.crc32(word.encode()) % self.dim] += 1.0
        out = np.log1p(out)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
