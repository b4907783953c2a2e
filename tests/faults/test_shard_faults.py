"""Damaged datasets are refused with the file named; outputs get the permissions the umask allows."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from data_contracts import ContractError
from data_contracts.io import atomic_write_bytes, sha256_file
from data_contracts.reader import open_buckets


@pytest.fixture
def dataset(tiny_shards, tmp_path):
    out = tmp_path / "ds"
    shutil.copytree(tiny_shards, out)
    return out


def _edit_manifest(folder, change) -> None:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_truncated_shard_with_a_matching_hash_names_the_file(dataset):
    shard = dataset / json.loads((dataset / "manifest.json").read_text())["shards"][0]["path"]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])

    def rehash(m):  # a manifest rewritten after the damage: the hash check alone cannot catch it
        m["shards"][0]["sha256"] = sha256_file(shard)

    _edit_manifest(dataset, rehash)
    with pytest.raises(ContractError, match=str(shard)) as err:
        open_buckets(dataset)
    assert "truncated or corrupt" in str(err.value)


def test_manifest_path_dot_is_a_clear_error(dataset):
    _edit_manifest(dataset, lambda m: m["shards"][0].update(path="."))
    with pytest.raises(ContractError, match="must name a file inside the dataset dir"):
        open_buckets(dataset)


def test_open_buckets_rejects_a_wrong_row_count(dataset):
    _edit_manifest(dataset, lambda m: m["shards"][0].update(rows=m["shards"][0]["rows"] + 1))
    with pytest.raises(ContractError, match="the manifest says"):
        open_buckets(dataset)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_atomic_writes_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        atomic_write_bytes(tmp_path / "shard.arrow", b"x")
        (tmp_path / "plain").write_bytes(b"x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "shard.arrow").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o666 & ~mask
