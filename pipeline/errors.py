"""Domain errors of the pipeline library; each message names the input and the fix."""

from __future__ import annotations


class PipelineError(RuntimeError):
    """Base class of pipeline errors."""


class AssetError(PipelineError):
    """A model or tokenizer asset is missing or cannot be prepared."""


class InputError(PipelineError):
    """An input file or record cannot be used; the message names it and says why."""


class ConfigError(PipelineError, ValueError):
    """A configuration is invalid; the message lists every problem with its fix."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        if len(problems) == 1:  # one mistake: one line
            super().__init__(f"{source}: {problems[0]}")
            return
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{lines}")


class TeacherUnavailable(PipelineError):
    """Teacher calls failed for reasons outside the request (connection refused, timeouts, 429/5xx).

    The batch is not written as done: a rerun after the server is back redoes only the batches
    that failed, and replies already received are in the response cache.
    """

    def __init__(self, url: str, failed: int, detail: str, batches: int = 1) -> None:
        self.url, self.failed, self.detail, self.batches = url, failed, detail, batches
        super().__init__(
            f"teacher {url} unreachable: {failed} call(s) failed in {batches} batch(es) after retries "
            f"(last: {detail}); start the server or fix teacher.base_url and rerun: finished batches are kept"
        )

    def __reduce__(self):  # keeps its fields across process-based task runners
        return (type(self), (self.url, self.failed, self.detail, self.batches))

    @classmethod
    def combine(cls, errors: list[TeacherUnavailable]) -> TeacherUnavailable:
        """One error for several failed batches (the counts summed)."""
        return cls(errors[0].url, sum(e.failed for e in errors), errors[-1].detail, len(errors))
