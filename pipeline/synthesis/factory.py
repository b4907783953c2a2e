"""Build teachers from configuration."""

from __future__ import annotations

from functools import cache

from pipeline.config import TeacherConfig
from pipeline.errors import ConfigError
from pipeline.synthesis.teachers import LocalTransformersTeacher, OpenAICompatTeacher, Teacher


def build_teacher(cfg: TeacherConfig) -> Teacher | None:
    """The teacher a :class:`TeacherConfig` describes (``None`` for ``kind: none``)."""
    match cfg.kind:
        case "none":
            return None
        case "local":
            return LocalTransformersTeacher(cfg.model, batch_size=cfg.batch_size)
        case "openai":
            problems = []
            if not cfg.base_url:
                problems.append(
                    "teacher.base_url is required for kind=openai (e.g. http://127.0.0.1:8000/v1)"
                )
            if not cfg.model:
                problems.append("teacher.model is required for kind=openai (the name the server serves)")
            if problems:
                raise ConfigError(problems, "teacher")
            return OpenAICompatTeacher(
                cfg.base_url,
                cfg.model,
                api_key_env=cfg.api_key_env,
                timeout=cfg.timeout_s,
                max_retries=cfg.max_retries,
                concurrency=cfg.concurrency,
            )
    raise ConfigError([f"unknown teacher kind {cfg.kind!r}"], "teacher")


def build_judge(cfg: TeacherConfig) -> Teacher | None:
    """The answer-verification judge: ``judge_model`` on the teacher's server, or ``None`` (the teacher judges)."""
    if not cfg.judge_model or cfg.kind != "openai":
        return None
    return build_teacher(cfg.model_copy(update={"model": cfg.judge_model}))


@cache
def build_dedup_embedder(name: str | None):
    """The sentence embedder for near-duplicate questions (``minilm``: the packaged all-MiniLM-L6-v2).

    One per process: a build synthesizes batch after batch and should load the model once.
    """
    if not name:
        return None
    from pipeline.chunking.embedders import HashingEmbedder, SentenceTransformerEmbedder

    if name == "hashing":
        return HashingEmbedder()
    return SentenceTransformerEmbedder(None if name == "minilm" else name, max_seq_tokens=64)
