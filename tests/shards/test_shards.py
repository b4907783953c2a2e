"""Tokenized shards: round trip, determinism, crash safety, bad inputs, dataset card."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pytest

import data_contracts as dc
from data_contracts.io import read_table, write_table
from data_contracts.reader import open_buckets
from pipeline.config import ShardConfig, SynthConfig, TeacherConfig
from pipeline.stages.load import iter_dataset
from pipeline.stages.shard import build_shards
from pipeline.stages.split import build_split, is_heldout, split_key
from pipeline.stages.synth import synthesize_corpus

EDGES = [512, 1024, 2048, 4096]


@pytest.fixture(scope="module")
def qa_dir(tmp_path_factory, small_chunks_for_shards):
    out = tmp_path_factory.mktemp("qa")
    cfg = SynthConfig(target_lengths=[400, 900, 2000, 4000, 6000], teacher_free_per_length=2)
    synthesize_corpus([small_chunks_for_shards], out, cfg, TeacherConfig(kind="none"))
    return out


def test_round_trip_records_to_datasets(qa_dir, tmp_path, formatter):
    res = build_shards([qa_dir], tmp_path / "s", ShardConfig(bucket_edges=EDGES, context_weight=0.1))
    records = {r.qa_id: r for r in iter_dataset(qa_dir, dc.QARecord)}
    ds = open_buckets(tmp_path / "s")
    assert len(ds) + res.over_length == len(records)
    for row in ds:
        rec = records[row["qa_id"]]
        enc = formatter.encode(rec.context, rec.question, rec.answer)
        assert row["input_ids"] == enc.input_ids.tolist()
        w = np.array(row["loss_weights"])
        assert np.all(w[enc.answer_mask] == 1.0) and np.allclose(w[enc.context_mask], 0.1)
        assert row["n_answer_tokens"] == enc.answer_mask.sum() and row["length"] <= row["bucket"]
    lengths = [r["length"] for r in ds]
    buckets = [r["bucket"] for r in ds]
    for b in set(buckets):  # sorted by length inside each bucket
        seq = [x for x, y in zip(lengths, buckets, strict=True) if y == b]
        assert seq == sorted(seq)


@pytest.mark.parametrize("by", ["record", "document"])
def test_heldout_split_is_disjoint_complete_and_stable(qa_dir, tmp_path, by):
    cfg = ShardConfig(bucket_edges=[512, 1024, 2048, 4096, 8192], heldout_fraction=0.5, heldout_by=by)
    res = build_shards([qa_dir], tmp_path / "s", cfg)
    train, held = open_buckets(tmp_path / "s"), open_buckets(tmp_path / "s" / "heldout")
    records = {r.qa_id: r for r in iter_dataset(qa_dir, dc.QARecord)}
    assert not set(train["qa_id"]) & set(held["qa_id"])
    assert len(train) + len(held) == len(records) and len(train) and len(held)
    assert build_split(res.manifest) == "train" and build_split(res.heldout.manifest) == "heldout"
    for qa_id in held["qa_id"]:
        assert is_heldout(records[qa_id], 0.5, by)
    if by == "document":  # no evidence document feeds both sides
        side = {split_key(records[q], by) for q in held["qa_id"]}
        assert not side & {split_key(records[q], by) for q in train["qa_id"]}
    again = build_shards([qa_dir], tmp_path / "s", cfg)
    assert again.skipped and again.heldout.skipped
    assert again.heldout.manifest == res.heldout.manifest
    assert "Held-out split" in (tmp_path / "s" / "heldout" / "README.md").read_text()
    assert "held out in `heldout/`" in (tmp_path / "s" / "README.md").read_text()


def test_over_length_rows_are_counted_not_silently_dropped(qa_dir, tmp_path):
    res = build_shards([qa_dir], tmp_path / "s", ShardConfig(bucket_edges=EDGES))
    assert res.over_length > 0  # the 6000-token examples
    assert [c.name for c in res.manifest.dropped] == ["over_max_bucket"]
    rejects = list(iter_dataset(tmp_path / "s", dc.RejectedRecord))
    assert len(rejects) == res.over_length and "add a larger bucket edge" in rejects[0].detail


def test_bucket_range_reads(qa_dir, tmp_path):
    build_shards([qa_dir], tmp_path / "s", ShardConfig(bucket_edges=EDGES))
    short = open_buckets(tmp_path / "s", 0, 1024)
    assert set(short["bucket"]) <= {512, 1024} and max(short["length"]) <= 1024


def test_deterministic_byte_identical_and_resumable(qa_dir, tmp_path):
    cfg = ShardConfig(bucket_edges=EDGES, shard_rows=3, run_tokens=3000)  # many shards, many spills
    a = build_shards([qa_dir], tmp_path / "a", cfg)
    b = build_shards([qa_dir], tmp_path / "b", cfg.model_copy(update={"run_tokens": 10**9}))
    assert [s.sha256 for s in a.manifest.shards] == [s.sha256 for s in b.manifest.shards]
    again = build_shards([qa_dir], tmp_path / "a", cfg)
    assert again.skipped and again.manifest == a.manifest
    c = build_shards([qa_dir], tmp_path / "c", cfg)
    assert [(s.path, s.sha256) for s in c.manifest.shards] == [(s.path, s.sha256) for s in a.manifest.shards]
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "c" / "manifest.json").read_bytes()


def test_spilling_does_not_change_output(qa_dir, tmp_path):
    one = build_shards([qa_dir], tmp_path / "x", ShardConfig(bucket_edges=EDGES, run_tokens=10**9))
    many = build_shards([qa_dir], tmp_path / "y", ShardConfig(bucket_edges=EDGES, run_tokens=1500))
    assert [s.sha256 for s in one.manifest.shards] == [s.sha256 for s in many.manifest.shards]


def test_killed_writer_leaves_no_partial_shard(qa_dir, tmp_path):
    out = tmp_path / "killed"
    code = (
        "import sys, time; import pipeline.stages.shard as sh\n"
        "from pipeline.config import ShardConfig\n"
        "orig = sh._write_ipc\n"
        "def slow(path, table):\n"
        "    time.sleep(0.4); return orig(path, table)\n"
        "sh._write_ipc = slow\n"
        f"sh.build_shards([{str(qa_dir)!r}], {str(out)!r}, ShardConfig(bucket_edges={EDGES}, shard_rows=1))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("len_*/*.arrow")):
        time.sleep(0.05)
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    visible = [p for p in out.glob("len_*/*.arrow")]
    assert visible, "the writer was killed before writing anything"
    for p in visible:  # every visible shard is whole and valid
        dc.check_tokenized_table(read_table(p), str(p))
    assert not (out / "manifest.json").exists()
    rebuilt = build_shards([qa_dir], out, ShardConfig(bucket_edges=EDGES, shard_rows=1))
    clean = build_shards([qa_dir], tmp_path / "clean", ShardConfig(bucket_edges=EDGES, shard_rows=1))
    assert [s.sha256 for s in rebuilt.manifest.shards] == [s.sha256 for s in clean.manifest.shards]
    assert not (out / ".staging").exists()


def test_bad_inputs_name_the_file_and_fix(qa_dir, tmp_path):
    out = tmp_path / "s"
    res = build_shards([qa_dir], out, ShardConfig(bucket_edges=EDGES))
    shard = out / res.manifest.shards[0].path
    data = shard.read_bytes()
    shard.write_bytes(data[:-100])  # corrupt
    with pytest.raises(dc.ContractError, match="sha256.*rebuild"):
        open_buckets(out)
    shard.unlink()
    with pytest.raises(dc.ContractError, match="missing"):
        open_buckets(out)
    old = tmp_path / "old.arrow"  # a shard written with an older contract version
    table = read_table(out / res.manifest.shards[1].path)
    write_table(
        old,
        table.replace_schema_metadata(
            {b"lengthwise.contract": b"tokenized_example", b"lengthwise.version": b"0"}
        ),
    )
    with pytest.raises(dc.ContractError, match="v0.*rebuild"):
        dc.check_schema(pa.ipc.open_stream(old.read_bytes()).schema, dc.TokenizedExample, str(old))


def test_dataset_card_renders(qa_dir, tmp_path):
    build_shards([qa_dir], tmp_path / "s", ShardConfig(bucket_edges=EDGES))
    card = (tmp_path / "s" / "README.md").read_text()
    assert card.startswith("---\n") and "## Buckets" in card and "## Evidence depth" in card
    assert "length_histogram.png" in card
    png = (tmp_path / "s" / "length_histogram.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_shard_and_inspect_cli(qa_dir, tmp_path):
    run = [sys.executable, "-m", "pipeline"]
    p = subprocess.run(
        [*run, "shard", str(qa_dir), "--buckets", "512,1024,2048,4096", "--out", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert "<=   1024" in p.stdout and "dropped over_max_bucket" in p.stdout
    p = subprocess.run([*run, "inspect", str(tmp_path / "s")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "#" in p.stdout
    p = subprocess.run(
        [*run, "shard", str(qa_dir), "--buckets", "900,300", "--out", str(tmp_path / "t")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1 and "increasing" in p.stderr
