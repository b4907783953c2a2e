"""Manifests: what a stage wrote, with hashes, counts and the config that produced it."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pydantic import Field, field_validator

from data_contracts._base import Record
from data_contracts.errors import ContractError


class ShardManifest(Record):
    """One Arrow IPC shard: where it is (relative to its dataset dir) and what it holds."""

    CONTRACT = "shard_manifest"
    VERSION = 1

    path: str
    contract: str
    contract_version: int
    rows: int = Field(ge=0)
    tokens: int = Field(ge=0)
    min_length: int = Field(ge=0)
    max_length: int = Field(ge=0)
    bytes: int = Field(ge=0)
    sha256: str
    bucket: int | None = None
    config_hash: str

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        p = PurePosixPath(value)
        if p.is_absolute() or ".." in p.parts or "\\" in value:
            raise ValueError(f"shard path must be relative and inside the dataset dir, got {value!r}")
        if not p.parts or p.parts == (".",):
            raise ValueError(f"shard path must name a file inside the dataset dir, got {value!r}")
        return value


class Count(Record):
    """A named count (a reject reason, a task type, a stage)."""

    CONTRACT = "count"
    VERSION = 1

    name: str
    count: int = Field(ge=0)


class MixCount(Record):
    """Rows, tokens and loss-carrying tokens of one kind of record (qa, doc_task, lm, replay, chat)."""

    CONTRACT = "mix_count"
    VERSION = 1

    kind: str = Field(description="qa | doc_task | lm | replay | chat")
    rows: int = Field(ge=0)
    tokens: int = Field(ge=0)
    loss_tokens: int = Field(ge=0, description="tokens with a loss weight > 0")


class BucketSummary(Record):
    """Rows and tokens in one length bucket (lengths in ``(lower, upper]``), and its data mix."""

    CONTRACT = "bucket_summary"
    VERSION = 2

    upper: int
    rows: int = Field(ge=0)
    tokens: int = Field(ge=0)
    shards: int = Field(ge=0)
    mix: list[MixCount] = Field(default_factory=list, description="rows and tokens per kind of record")


class SkippedInput(Record):
    """An input (file, row or dataset) a stage could not use, and why; listed, never silently lost."""

    CONTRACT = "skipped_input"
    VERSION = 1

    source: str = Field(description="file, file:line or dataset:split:row")
    reason: str


class BuildManifest(Record):
    """The manifest of a dataset directory written by one stage (chunks, qa or tokenized).

    It lists every shard with its hash, so a reader can prove it sees exactly what was
    written, plus the counts a user needs to judge the build (per bucket, per task, per reject
    reason) and the configuration that made it.
    """

    CONTRACT = "build_manifest"
    VERSION = 3

    kind: str = Field(description="chunks | qa | rejects | tokenized")
    lengthwise_version: str
    config_hash: str
    config_json: str
    tokenizer: str | None = None
    tokenizer_fingerprint: str | None = Field(
        None,
        description="hash of the tokenizer's vocabulary and rules; train and eval refuse a different one",
    )
    bucket_edges: list[int] = Field(default_factory=list)
    input_rows: int = Field(ge=0, default=0)
    shards: list[ShardManifest]
    buckets: list[BucketSummary] = Field(default_factory=list)
    task_counts: list[Count] = Field(default_factory=list)
    dropped: list[Count] = Field(default_factory=list)
    skipped: list[SkippedInput] = Field(default_factory=list, description="inputs that could not be used")

    @property
    def rows(self) -> int:
        """Total rows over all shards."""
        return sum(s.rows for s in self.shards)

    @property
    def tokens(self) -> int:
        """Total tokens over all shards."""
        return sum(s.tokens for s in self.shards)


def resolve_in(dataset_dir: str | Path, rel: str) -> Path:
    """Resolve a manifest path inside ``dataset_dir``; refuse anything that escapes it."""
    root = Path(dataset_dir).resolve()
    target = (root / rel).resolve()
    if root not in target.parents:
        what = "the dataset directory itself, not a file in it" if target == root else "outside it"
        raise ContractError(
            f"{root / 'manifest.json'}: shard path {rel!r} resolves to {what}; "
            "a manifest lists files inside its folder, rebuild the manifest"
        )
    return target
