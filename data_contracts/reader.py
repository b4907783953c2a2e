"""Open tokenized shards as a ``datasets.Dataset`` (memory-mapped, zero-copy), contract-checked.

This is the one way the trainer (and users) read lengthwise training data. ``datasets`` is
imported only when called, so importing ``data_contracts`` stays light.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from data_contracts.arrow import check_schema
from data_contracts.errors import ContractError
from data_contracts.io import sha256_file
from data_contracts.manifests import BuildManifest, resolve_in
from data_contracts.tokenized import TokenizedExample, check_tokenized_table

MANIFEST = "manifest.json"


def read_manifest(dataset_dir: str | Path) -> BuildManifest:
    """The build manifest of a tokenized dataset folder."""
    path = Path(dataset_dir) / MANIFEST
    if not path.exists():
        raise ContractError(f"{path}: no manifest; build the folder with `lengthwise shard` first")
    try:
        manifest = BuildManifest.model_validate(json.loads(path.read_text()))
    except ValueError as exc:
        raise ContractError(f"{path}: invalid manifest: {exc}") from exc
    if manifest.kind != "tokenized":
        raise ContractError(
            f"{path}: a '{manifest.kind}' manifest, expected 'tokenized' (run `lengthwise shard`)"
        )
    return manifest


def open_buckets(
    dataset_dir: str | Path, min_length: int = 0, max_length: int | None = None, verify_hashes: bool = True
):
    """All shards whose bucket lies in ``(min_length, max_length]`` as one ``datasets.Dataset``.

    Every shard is resolved inside ``dataset_dir``, its sha256 compared with the manifest and its
    schema and rows checked against the ``tokenized_example`` contract. Rows keep their
    length-sorted order within each bucket.
    """
    import datasets

    root = Path(dataset_dir)
    manifest = read_manifest(root)
    parts = []
    for shard in manifest.shards:
        if (
            shard.bucket is None
            or shard.bucket <= min_length
            or (max_length is not None and shard.bucket > max_length)
        ):
            continue
        path = resolve_in(root, shard.path)
        if not path.exists():
            raise ContractError(
                f"{path}: listed in the manifest but missing; rebuild with `lengthwise shard`"
            )
        if verify_hashes and sha256_file(path) != shard.sha256:
            raise ContractError(f"{path}: sha256 does not match the manifest; the shard changed, rebuild it")
        parts.append(_open_shard(path, shard.rows))
    if not parts:
        raise ContractError(f"{root}: no shards with buckets in ({min_length}, {max_length}]")
    return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]


def _open_shard(path: Path, rows: int):
    """One memory-mapped, contract-checked shard; any read failure names the file and the fix."""
    import datasets

    try:
        with pa.memory_map(str(path)) as src:  # the stamp, as written (datasets rewrites metadata)
            check_schema(pa.ipc.open_stream(src).schema, TokenizedExample, str(path))
        ds = datasets.Dataset.from_file(str(path))
    except (pa.ArrowInvalid, OSError) as exc:  # e.g. truncated after its hash was recorded
        raise ContractError(
            f"{path}: not a readable Arrow shard ({exc}); it is truncated or corrupt, "
            "rebuild it with `lengthwise shard`"
        ) from exc
    if ds.num_rows != rows:
        raise ContractError(
            f"{path}: {ds.num_rows} rows, the manifest says {rows}; rebuild with `lengthwise shard`"
        )
    check_tokenized_table(ds.data.table, str(path))
    return ds
