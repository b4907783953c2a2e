"""Content-addressed teacher response cache (SQLite, WAL), below any orchestration.

Keyed by backend, server, model, sampling parameters and the rendered messages: a rerun, or a
run after a crash, pays for no request twice. Completions are stored; so are failures, with how
often they happened, so a rerun does not ask a server again what it refused (a 400) and asks
again what failed for a passing reason (timeouts, 429, 5xx) only up to ``error_attempts`` times.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

from pipeline.synthesis.teachers import ChatRequest, ChatResponse, Teacher, TeacherError


class ResponseCache:
    """A small key -> completion store that is safe to share between threads and processes.

    Args:
        path: the SQLite file.
        readonly: open for lookups only and never create the file (``--dry-run``).

    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if readonly:
            if self.path.exists():
                uri = f"file:{self.path.resolve()}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=60)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, backend TEXT, model TEXT, text TEXT,"
            " finish_reason TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, created REAL)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS errors (key TEXT PRIMARY KEY, message TEXT, status INTEGER,"
            " transient INTEGER, attempts INTEGER, created REAL)"
        )
        self._db.commit()

    def _query(self, sql: str, args: tuple) -> tuple | None:
        if self._db is None:
            return None
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchone()
            except sqlite3.OperationalError:  # an old or read-only file without the table
                return None

    def get(self, key: str) -> ChatResponse | None:
        """The cached completion for ``key``, if any."""
        row = self._query(
            "SELECT text, finish_reason, prompt_tokens, completion_tokens FROM responses WHERE key = ?",
            (key,),
        )
        return ChatResponse(row[0], row[1], row[2], row[3], cached=True) if row else None

    def get_error(self, key: str) -> tuple[TeacherError, int] | None:
        """The remembered failure for ``key`` and how many runs hit it, if any."""
        row = self._query("SELECT message, status, transient, attempts FROM errors WHERE key = ?", (key,))
        return (TeacherError(row[0], row[1], bool(row[2])), int(row[3])) if row else None

    def put(self, key: str, backend: str, model: str, resp: ChatResponse) -> None:
        """Store a completion (committed at once: a crash right after loses nothing)."""
        self._write(
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
        self._write("DELETE FROM errors WHERE key = ?", (key,))

    def put_error(self, key: str, err: TeacherError, attempts: int) -> None:
        """Remember a failure (its message is already redacted by the client)."""
        self._write(
            "INSERT OR REPLACE INTO errors VALUES (?, ?, ?, ?, ?, ?)",
            (key, str(err)[:500], err.status, int(err.transient), attempts, time.time()),
        )

    def _write(self, sql: str, args: tuple) -> None:
        if self._db is None or self.readonly:
            raise RuntimeError(f"response cache {self.path} is read-only")
        with self._lock:
            self._db.execute(sql, args)
            self._db.commit()

    def __len__(self) -> int:
        row = self._query("SELECT COUNT(*) FROM responses", ())
        return row[0] if row else 0

    def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            self._db.close()


class CachedTeacher:
    """Wraps a teacher: cache hits cost nothing; misses go to the teacher and are stored.

    Identical requests in flight at the same time are sent once. Failures are remembered: a
    refused request (not transient) is answered from the cache on a rerun; a transient failure is
    tried again on up to ``error_attempts`` runs in all.
    """

    def __init__(self, teacher: Teacher, cache: ResponseCache, error_attempts: int = 3) -> None:
        self.teacher, self.cache, self.error_attempts = teacher, cache, error_attempts
        self.backend, self.model = teacher.backend, teacher.model
        self.server = str(getattr(teacher, "server", ""))
        self.concurrency = int(getattr(teacher, "concurrency", 1))
        self.max_batch = int(getattr(teacher, "max_batch", 16))
        self.hits = self.calls = self.prompt_tokens = self.completion_tokens = 0
        self._lock = threading.Lock()
        self._inflight: dict[str, Future] = {}

    def key(self, request: ChatRequest) -> str:
        """The cache key of ``request`` for this teacher."""
        return request.key(self.backend, self.model, self.server)

    def _lookup(self, key: str) -> ChatResponse | TeacherError | None:
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        remembered = self.cache.get_error(key)
        if remembered is not None:
            err, attempts = remembered
            if not err.transient or attempts >= self.error_attempts:
                return err
        return None

    def complete(self, requests: Sequence[ChatRequest]) -> list[ChatResponse | TeacherError]:
        """Serve from the cache where possible; call the teacher for the rest (each distinct one once)."""
        keys = [self.key(r) for r in requests]
        out: list[ChatResponse | TeacherError | None] = [self._lookup(k) for k in keys]
        mine: dict[str, Future] = {}
        waits: dict[int, Future] = {}
        with self._lock:
            self.hits += sum(r is not None for r in out)
            for i, k in enumerate(keys):
                if out[i] is not None:
                    continue
                if k in self._inflight:  # someone else (or an earlier item here) is asking already
                    waits[i] = self._inflight[k]
                    continue
                fut: Future = Future()
                self._inflight[k] = mine[k] = fut
                waits[i] = fut
        todo = {k: requests[keys.index(k)] for k in mine}
        try:
            fresh = self.teacher.complete(list(todo.values())) if todo else []
        except BaseException as exc:
            self._settle(mine, exc)
            raise
        with self._lock:
            self.calls += len(todo)
        for k, resp in zip(todo, fresh, strict=True):
            self._store(k, resp)
        self._settle(mine, None, dict(zip(todo, fresh, strict=True)))
        for i, fut in waits.items():
            out[i] = fut.result()
        return out  # type: ignore[return-value]

    def _store(self, key: str, resp: ChatResponse | TeacherError) -> None:
        if isinstance(resp, ChatResponse):
            with self._lock:
                self.prompt_tokens += resp.prompt_tokens
                self.completion_tokens += resp.completion_tokens
            self.cache.put(key, self.backend, self.model, resp)
        else:
            before = self.cache.get_error(key)
            self.cache.put_error(key, resp, (before[1] if before else 0) + 1)

    def _settle(
        self, mine: dict[str, Future], exc: BaseException | None, results: dict | None = None
    ) -> None:
        with self._lock:
            for k, fut in mine.items():
                self._inflight.pop(k, None)
                if exc is not None:
                    fut.set_exception(exc)
                else:
                    fut.set_result(results[k])  # type: ignore[index]

    def cached(self, request: ChatRequest) -> bool:
        """Whether ``request`` would be answered without a call."""
        return self._lookup(self.key(request)) is not None
