"""Writing contract shards in rotation, and the manifest that lists them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from data_contracts import BuildManifest, Count, Record, ShardManifest
from data_contracts.io import atomic_write_text, write_records
from pipeline.version import version

MANIFEST = "manifest.json"


class ShardWriter:
    """Buffer records of one contract and write them as numbered IPC shards, atomically.

    Args:
        out_dir: dataset folder; shard paths in the manifest are relative to it.
        prefix: file name prefix, e.g. ``chunks`` -> ``chunks-00000.arrow``.
        model: the record contract.
        rows_per_shard: rotate after this many rows.
        length_of: how to measure a record's length (tokens), for min/max/token totals.

    """

    def __init__(
        self,
        out_dir: Path,
        prefix: str,
        model: type[Record],
        config_hash: str,
        rows_per_shard: int = 50_000,
        length_of: Callable[[Record], int] = lambda r: 0,
        bucket: int | None = None,
    ) -> None:
        self.out_dir, self.prefix, self.model = Path(out_dir), prefix, model
        self.config_hash, self.rows_per_shard, self.length_of, self.bucket = (
            config_hash,
            rows_per_shard,
            length_of,
            bucket,
        )
        self.shards: list[ShardManifest] = []
        self._buf: list[Record] = []

    def add(self, record: Record) -> None:
        """Buffer one record; writes a shard when the buffer is full."""
        self._buf.append(record)
        if len(self._buf) >= self.rows_per_shard:
            self.flush()

    def extend(self, records: Iterable[Record]) -> None:
        """Buffer many records."""
        for r in records:
            self.add(r)

    def flush(self) -> None:
        """Write buffered records as the next shard (nothing if the buffer is empty)."""
        if not self._buf:
            return
        rel = f"{self.prefix}-{len(self.shards):05d}.arrow"
        path = self.out_dir / rel
        digest = write_records(path, self._buf, self.model)
        lengths = [self.length_of(r) for r in self._buf]
        self.shards.append(
            ShardManifest(
                path=rel,
                contract=self.model.CONTRACT,
                contract_version=self.model.VERSION,
                rows=len(self._buf),
                tokens=sum(lengths),
                min_length=min(lengths),
                max_length=max(lengths),
                bytes=path.stat().st_size,
                sha256=digest,
                bucket=self.bucket,
                config_hash=self.config_hash,
            )
        )
        self._buf = []

    def close(self) -> list[ShardManifest]:
        """Flush and return the manifests of every shard written."""
        self.flush()
        return self.shards


def counts(counter: Counter[str]) -> list[Count]:
    """Sorted :class:`Count` records from a counter."""
    return [Count(name=k, count=v) for k, v in sorted(counter.items())]


def new_manifest(
    kind: str, config_json: str, config_hash: str, shards: list[ShardManifest], **fields
) -> BuildManifest:
    """A :class:`BuildManifest` stamped with this lengthwise version (not written yet)."""
    return BuildManifest(
        kind=kind,
        lengthwise_version=version(),
        config_hash=config_hash,
        config_json=config_json,
        shards=shards,
        **fields,
    )


def write_manifest(
    out_dir: Path, kind: str, config_json: str, config_hash: str, shards: list[ShardManifest], **fields
) -> BuildManifest:
    """Write ``manifest.json`` atomically (sorted keys: identical builds give identical bytes)."""
    return save_manifest(out_dir, new_manifest(kind, config_json, config_hash, shards, **fields))


def save_manifest(out_dir: Path, manifest: BuildManifest) -> BuildManifest:
    """Write ``manifest`` as ``out_dir/manifest.json``, atomically; it marks the folder as complete."""
    atomic_write_text(
        Path(out_dir) / MANIFEST,
        json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True) + "\n",
    )
    return manifest
