"""Read the records of a stage's output folder through their contracts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from data_contracts import Record, resolve_in
from data_contracts.io import read_records
from pipeline.validate import load_manifest


def iter_datasets(path: str | Path, model: type[Record]) -> Iterator[Record]:
    """Records of a stage folder, or of every stage folder directly below ``path`` (a build's ``qa/``)."""
    root = Path(path)
    folders = [root] if (root / "manifest.json").exists() else sorted(root.glob("*/"))
    for folder in folders:
        if (folder / "manifest.json").exists():
            yield from iter_dataset(folder, model)


def iter_dataset(folder: str | Path, model: type[Record]) -> Iterator[Record]:
    """Every ``model`` record listed in ``folder/manifest.json``, validated, in manifest order."""
    folder = Path(folder)
    manifest = load_manifest(folder)
    for shard in manifest.shards:
        if shard.contract == model.CONTRACT:
            yield from read_records(resolve_in(folder, shard.path), model)
