"""Keep a teacher busy: requests from many callers, up to ``concurrency`` calls in flight.

Callers submit single requests and get futures; worker threads take what is queued (up to
``max_batch`` per call, for batched local generation) and call the teacher. How many requests are
in flight no longer depends on how callers group them.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from pipeline.synthesis.teachers import ChatRequest, ChatResponse, Teacher, TeacherError

_STOP = object()


class Dispatcher:
    """Runs ``teacher.complete`` from ``concurrency`` threads over a shared request queue.

    Args:
        teacher: any teacher; ``concurrency`` and ``max_batch`` default to its attributes.
        gather_s: how long a worker waits to fill a batch (only when ``max_batch > 1``).

    """

    def __init__(
        self,
        teacher: Teacher,
        concurrency: int | None = None,
        max_batch: int | None = None,
        gather_s: float = 0.02,
    ) -> None:
        self.teacher = teacher
        self.concurrency = max(1, concurrency or int(getattr(teacher, "concurrency", 1)))
        self.max_batch = max(1, max_batch or int(getattr(teacher, "max_batch", 1)))
        self.gather_s = gather_s
        self._queue: queue.Queue = queue.Queue()
        self._threads = [
            threading.Thread(target=self._work, name=f"teacher-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for t in self._threads:
            t.start()

    def submit(self, request: ChatRequest) -> Future:
        """Queue one request; the future holds a ChatResponse or TeacherError (or raises)."""
        fut: Future = Future()
        self._queue.put((request, fut))
        return fut

    def complete(self, requests: list[ChatRequest]) -> list[ChatResponse | TeacherError]:
        """Submit several requests and wait for all of them, in order."""
        futures = [self.submit(r) for r in requests]
        return [f.result() for f in futures]

    def _take(self) -> list:
        first = self._queue.get()
        if first is _STOP:
            return []
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                item = (
                    self._queue.get(timeout=self.gather_s) if self.max_batch > 1 else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)
                break
            batch.append(item)
        return batch

    def _work(self) -> None:
        while batch := self._take():
            try:
                results = self.teacher.complete([r for r, _ in batch])
            except BaseException as exc:  # a fatal teacher error (auth, unreachable) reaches every caller
                for _, fut in batch:
                    fut.set_exception(exc)
                continue
            for (_, fut), res in zip(batch, results, strict=True):
                fut.set_result(res)

    def close(self) -> None:
        """Stop the workers once the queue is drained."""
        for _ in self._threads:
            self._queue.put(_STOP)
        for t in self._threads:
            t.join()
