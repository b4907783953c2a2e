"""Content-addressed teacher response cache (SQLite, WAL), below any orchestration.

Keyed by backend, model, sampling parameters and the rendered messages: a rerun, or a run after a
crash, pays for no request twice. Only successful completions are stored.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.synthesis.teachers import ChatRequest, ChatResponse, Teacher, TeacherError


class ResponseCache:
    """A small key -> completion store that is safe to share between threads and processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, backend TEXT, model TEXT, text TEXT,"
            " finish_reason TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, created REAL)"
        )
        self._db.commit()

    def get(self, key: str) -> ChatResponse | None:
        """The cached completion for ``key``, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT text, finish_reason, prompt_tokens, completion_tokens FROM responses WHERE key = ?",
                (key,),
            ).fetchone()
        return ChatResponse(row[0], row[1], row[2], row[3], cached=True) if row else None

    def put(self, key: str, backend: str, model: str, resp: ChatResponse) -> None:
        """Store a completion (committed at once: a crash right after loses nothing)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    backend,
                    model,
                    resp.text,
                    resp.finish_reason,
                    resp.prompt_tokens,
                    resp.completion_tokens,
                    time.time(),
                ),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        """Close the database."""
        self._db.close()


class CachedTeacher:
    """Wraps a teacher: cache hits cost nothing; misses go to the teacher and are stored."""

    def __init__(self, teacher: Teacher, cache: ResponseCache) -> None:
        self.teacher, self.cache = teacher, cache
        self.backend, self.model = teacher.backend, teacher.model
        self.hits = self.calls = self.prompt_tokens = self.completion_tokens = 0

    def complete(self, requests: Sequence[ChatRequest]) -> list[ChatResponse | TeacherError]:
        """Serve from the cache where possible; call the teacher for the rest."""
        keys = [r.key(self.backend, self.model) for r in requests]
        out: list[ChatResponse | TeacherError | None] = [self.cache.get(k) for k in keys]
        todo = [i for i, r in enumerate(out) if r is None]
        self.hits += len(requests) - len(todo)
        if todo:
            fresh = self.teacher.complete([requests[i] for i in todo])
            self.calls += len(todo)
            for i, resp in zip(todo, fresh, strict=True):
                out[i] = resp
                if isinstance(resp, ChatResponse):
                    self.prompt_tokens += resp.prompt_tokens
                    self.completion_tokens += resp.completion_tokens
                    self.cache.put(keys[i], self.backend, self.model, resp)
        return out  # type: ignore[return-value]

    def cached(self, request: ChatRequest) -> bool:
        """Whether ``request`` would be served from the cache."""
        return self.cache.get(request.key(self.backend, self.model)) is not None
