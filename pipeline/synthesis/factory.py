"""Build teachers from configuration."""

from __future__ import annotations

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
