"""Typed stage configurations (pydantic), shared by the CLI, the flows and YAML configs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StageConfig(BaseModel):
    """Base for stage configs: strict (a typo in YAML is an error, not a silent default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ChunkerConfig(StageConfig):
    """Which chunker to build and how."""

    method: Literal["recursive", "sliding", "semantic"] = "recursive"
    tokenizer: str | None = Field(
        None, description="student tokenizer: path, hub ID or 'smollm2-135m' (default)"
    )
    max_tokens: int = Field(512, ge=16)
    min_tokens: int | None = Field(None, ge=0)
    target_tokens: int | None = Field(
        None, ge=1, description="recursive: preferred size (default max_tokens)"
    )
    stride_tokens: int | None = Field(None, ge=1, description="sliding: distance between window starts")
    embedder: str | None = Field(
        None,
        description="semantic: sentence-transformers/model2vec model (default MiniLM), or 'hashing'",
    )
    threshold: Literal["percentile", "stddev", "interquartile", "gradient"] = "percentile"
    threshold_amount: float | None = None


def build_chunker(cfg: ChunkerConfig):
    """Build the chunker a :class:`ChunkerConfig` describes."""
    from pipeline.chunking import (
        HashingEmbedder,
        RecursiveChunker,
        SemanticChunker,
        SentenceTransformerEmbedder,
        SlidingWindowChunker,
    )

    match cfg.method:
        case "recursive":
            return RecursiveChunker(
                tokenizer=cfg.tokenizer,
                max_tokens=cfg.max_tokens,
                min_tokens=cfg.min_tokens,
                target_tokens=cfg.target_tokens,
            )
        case "sliding":
            return SlidingWindowChunker(
                tokenizer=cfg.tokenizer, max_tokens=cfg.max_tokens, stride_tokens=cfg.stride_tokens
            )
        case "semantic":
            embedder = None
            if cfg.embedder == "hashing":
                embedder = HashingEmbedder()
            elif cfg.embedder:
                embedder = SentenceTransformerEmbedder(cfg.embedder)
            return SemanticChunker(
                tokenizer=cfg.tokenizer,
                max_tokens=cfg.max_tokens,
                min_tokens=cfg.min_tokens,
                embedder=embedder,
                threshold=cfg.threshold,
                threshold_amount=cfg.threshold_amount,
            )
    raise ValueError(f"unknown chunking method {cfg.method!r}")
