"""Domain errors of the pipeline library; each message names the input and the fix."""


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
