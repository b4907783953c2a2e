"""Typed stage configurations (pydantic), shared by the CLI, the flows and YAML configs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Loading, validation and command-line values live in their own modules; re-exported for callers.
from pipeline.configfile import (
    apply_base_model,
    apply_overrides,
    did_you_mean,
    load_raw,
    load_yaml,
    make,
    validate_raw,
)
from pipeline.options import choice, choice_list, float_list, int_list, usage_error


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
    embedder_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "torch", description="semantic: run the model with sentence-transformers or ONNX Runtime (fast extra)"
    )
    threshold: Literal["percentile", "stddev", "interquartile", "gradient"] = "percentile"
    threshold_amount: float | None = None


def build_chunker(cfg: ChunkerConfig):
    """Build the chunker a :class:`ChunkerConfig` describes."""
    from pipeline.chunking import (
        HashingEmbedder,
        OnnxEmbedder,
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
            elif cfg.embedder_backend != "torch":
                embedder = OnnxEmbedder(cfg.embedder, quantize=cfg.embedder_backend == "onnx-int8")
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


SELF_INSTRUCT_TASKS = ("general", "summary", "multi_hop", "extraction")
TEACHER_FREE_TASKS = ("passkey", "needle_multikey", "kv_retrieval", "variable_tracking")


class TeacherConfig(StageConfig):
    """Which teacher writes the self-instruct QA (``none``: teacher-free tasks only)."""

    kind: Literal["openai", "local", "none"] = "local"
    model: str | None = Field(None, description="served model name (openai) or model folder/hub ID (local)")
    base_url: str | None = Field(None, description="openai: server root including /v1")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0)
    concurrency: int = Field(4, ge=1)
    batch_size: int = Field(8, ge=1, description="local: prompts generated together")
    judge_model: str | None = Field(None, description="openai: model (same server) that verifies answers")


class SynthConfig(StageConfig):
    """Self-instruct and teacher-free synthesis settings."""

    tasks: list[Literal["general", "summary", "multi_hop", "extraction"]] = list(SELF_INSTRUCT_TASKS)
    questions_per_doc: int = Field(4, ge=0)
    target_lengths: list[int] = Field(default_factory=lambda: [1024, 4096])
    teacher_free_tasks: list[Literal["passkey", "needle_multikey", "kv_retrieval", "variable_tracking"]] = (
        list(TEACHER_FREE_TASKS)
    )
    teacher_free_per_length: int = Field(2, ge=0, description="records per (task, target length)")
    student_tokenizer: str | None = Field(None, description="student model folder/hub ID (default SmolLM2)")
    prompt_version: str = "v1"
    evidence_mode: Literal["auto", "teacher", "anchored"] = Field(
        "auto",
        description="teacher: the teacher quotes its evidence; anchored: key sentences are picked from the chunk "
        "and the teacher asks about them (works with small teachers); auto: anchored for local teachers",
    )
    temperature: float = Field(0.3, ge=0)
    frequency_penalty: float = Field(
        0.0,
        ge=0,
        le=2,
        description="discourages loops; keep 0 for grounded QA (answers must reuse the source's words)",
    )
    max_new_tokens: int = Field(256, ge=16)
    max_answer_tokens: int = Field(256, ge=8)
    min_support: float = Field(0.5, ge=0, le=1)
    dedup_threshold: float = Field(0.7, gt=0, le=1)
    depth_bins: int = Field(10, ge=1)
    seed: int = 0
    # Quality gates and document-level tasks (issue 17). "auto": on for a served (openai) teacher, off for
    # the small local stand-in, which cannot judge answers.
    closed_book_check: bool | Literal["auto"] = Field(
        "auto", description="drop what the teacher knows unread"
    )
    verify_answers: bool | Literal["auto"] = Field(
        "auto",
        description="a judge checks each answer against its evidence (answer_contradicted/_not_supported)",
    )
    dedup_embedder: str | None = Field(
        "minilm", description="sentence embedder for near-duplicate questions (minilm: packaged; null: off)"
    )
    dedup_cosine: float = Field(0.93, gt=0, le=1)
    doc_tasks: list[Literal["doc_summary", "multi_segment", "multi_doc"]] = Field(
        default_factory=list, description="document-level tasks beside the per-chunk ones"
    )
    doc_tasks_per_doc: int = Field(
        1, ge=0, description="multi-segment and multi-document questions per document"
    )


DEFAULT_BUCKETS = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]


class ShardConfig(StageConfig):
    """Tokenize QA records with the student's chat template into length-bucketed shards."""

    tokenizer: str | None = Field(None, description="student model folder/hub ID (default SmolLM2)")
    bucket_edges: list[int] = Field(default_factory=lambda: list(DEFAULT_BUCKETS))
    answer_weight: float = Field(1.0, ge=0)
    context_weight: float = Field(0.0, ge=0, description="LIFT-style LM loss on the document tokens")
    system_prompt: str | None = Field(
        None, description="system turn for records that bring none (imported conversations keep their own)"
    )
    format: Literal["chat", "completion"] = Field(
        "chat",
        description="chat: the model's chat template; completion: plain text, turns joined by a blank line "
        "(base models without a template)",
    )
    chat_template: str | None = Field(
        None, description="a Jinja file replacing the tokenizer's chat template"
    )
    assistant_turns: Literal["all", "last"] = Field(
        "all", description="imported conversations: loss on every assistant turn, or on the last one only"
    )
    shard_tokens: int = Field(16_000_000, ge=1, description="target tokens per shard")
    shard_rows: int = Field(20_000, ge=1, description="maximum rows per shard")
    run_tokens: int = Field(32_000_000, ge=1, description="tokens buffered in memory before spilling")
    heldout_fraction: float = Field(
        0.0, ge=0.0, lt=1.0, description="share written to heldout/ for evaluation, never trained on"
    )
    heldout_by: Literal["document", "record"] = Field(
        "document", description="split whole evidence documents (no context leak) or single records"
    )

    @field_validator("bucket_edges")
    @classmethod
    def _sorted(cls, v: list[int]) -> list[int]:
        if not v or sorted(set(v)) != v or v[0] < 1:
            raise ValueError("bucket_edges must be strictly increasing positive integers")
        return v


class ChatSource(StageConfig):
    """Chat or instruction data to import as conversations (``lengthwise shard FILE``, ``sources: kind: chat``)."""

    path: str | None = Field(
        None, description="a .jsonl/.json/.parquet file, a folder of them, or a datasets folder"
    )
    dataset: str | None = Field(
        None, description="a hub dataset ID (needs the network) or a save_to_disk folder"
    )
    split: str = "train"
    format: Literal["auto", "messages", "sharegpt", "alpaca", "longalign"] = Field(
        "auto", description="row format; auto picks it from each row's keys"
    )
    system_prompt: str | None = Field(None, description="system turn for rows without their own")
    max_rows: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> ChatSource:
        if (self.path is None) == (self.dataset is None):
            raise ValueError("give exactly one of path or dataset")
        return self


class LMConfig(StageConfig):
    """Long-document LM records (LIFT / ProLong style) mixed with the QA records.

    Every document becomes plain-text records with loss on all tokens: the whole document when it
    fits a stage length, else sliding windows cut at each stage length (exact character offsets,
    token-counted with the student tokenizer). ``share`` is a share of *tokens* in each bucket:
    LM tokens / (QA tokens + LM tokens), where QA counts every synthesized record (per-chunk and
    document-level tasks). Windows are picked in a seeded hash order, so reruns write identical
    shards; a corpus too small for the share is reported (achieved share, warning), never padded.
    """

    share: float = Field(0.3, gt=0, le=1, description="LM tokens / (QA + LM tokens) per bucket; 1: LM only")
    lengths: list[int] | None = Field(
        None, description="window lengths in tokens (default: shard.bucket_edges, one per stage length)"
    )
    overlap: float = Field(0.0, ge=0, lt=1, description="share of a window repeated in the next one")
    min_tokens: int = Field(64, ge=1, description="drop windows (document tails) shorter than this")
    seed: int = Field(0, description="seed of the hash order in which windows are picked")

    @field_validator("lengths")
    @classmethod
    def _lengths(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or sorted(set(v)) != v or v[0] < 32):
            raise ValueError("lengths must be strictly increasing integers >= 32 (or null: the bucket edges)")
        return v


class ReplayConfig(ChatSource):
    """Short instruction data replayed beside the long records so short skills are kept.

    Any chat source (messages, ShareGPT, Alpaca, LongAlign rows); ``share`` caps its tokens at
    that share of the build's total tokens. Rows are picked in a seeded hash order.
    """

    share: float = Field(0.1, gt=0, lt=1, description="replay tokens / all tokens of the build, at most")
    seed: int = Field(0, description="seed of the hash order in which rows are picked")


__all__ = [
    "DEFAULT_BUCKETS",
    "SELF_INSTRUCT_TASKS",
    "TEACHER_FREE_TASKS",
    "ChatSource",
    "ChunkerConfig",
    "LMConfig",
    "ReplayConfig",
    "ShardConfig",
    "StageConfig",
    "SynthConfig",
    "TeacherConfig",
    "apply_base_model",
    "apply_overrides",
    "build_chunker",
    "choice",
    "choice_list",
    "did_you_mean",
    "float_list",
    "int_list",
    "load_raw",
    "load_yaml",
    "make",
    "usage_error",
    "validate_raw",
]
