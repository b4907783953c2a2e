"""Shards load with `datasets.load_dataset`, and `export-shards` feeds TRL's SFTTrainer with lengthwise's loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_contracts.reader import open_buckets, read_manifest
from pipeline.stages.hf_export import export_shards


def test_load_dataset_reads_a_shard_folder(tiny_shards, tmp_path):
    from datasets import load_dataset

    manifest = read_manifest(tiny_shards)
    ds = load_dataset(str(tiny_shards), cache_dir=str(tmp_path / "cache"))  # the default config: all buckets
    assert ds["train"].num_rows == manifest.rows
    assert sorted(ds["train"]["example_id"]) == sorted(open_buckets(tiny_shards)["example_id"])
    one = load_dataset(str(tiny_shards), "len_512", cache_dir=str(tmp_path / "cache"))["train"]
    assert set(one["bucket"]) == {512}


@pytest.fixture(scope="module")
def exported(tiny_shards, tmp_path_factory):
    from typer.testing import CliRunner

    from pipeline.cli import app

    out = tmp_path_factory.mktemp("hf") / "shards"
    res = CliRunner().invoke(app, ["export-shards", str(tiny_shards), "--out", str(out)])
    assert res.exit_code == 0 and "load_dataset" in res.output, res.output
    result = export_shards(tiny_shards, out)  # rerun: replaces its own earlier export
    return out, result


def test_export_shards_columns(exported, tiny_shards, tmp_path):
    from datasets import load_dataset

    out, result = exported
    ds = load_dataset(str(out), cache_dir=str(tmp_path / "cache"))["train"]
    src = open_buckets(tiny_shards)
    assert ds.num_rows == src.num_rows == result.rows["train"]
    by_id = {r["example_id"]: r for r in src}
    for row in ds.select(range(0, ds.num_rows, 7)):
        ref = by_id[row["example_id"]]
        w = np.asarray(ref["loss_weights"])
        assert row["input_ids"] == ref["input_ids"]
        assert row["labels"] == [t if wt > 0 else -100 for t, wt in zip(ref["input_ids"], w, strict=True)]
        assert row["attention_mask"] == [1] * row["length"] and row["position_ids"] == list(
            range(row["length"])
        )
        assert any(x != -100 for x in row["labels"])
    assert "load_dataset" in (out / "README.md").read_text()


def test_trl_sft_step_on_a_packed_row_matches_lengthwise_token_loss(exported, tiny_model, tmp_path):
    """One SFTTrainer step (BFD packing, padding-free) on exported rows; loss == lengthwise's, loss_norm token."""
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from trainer.batch import collate, step_totals
    from trainer.loss import weighted_loss
    from trainer.model import hidden_and_head

    out, _ = exported
    ds = load_dataset(str(out), cache_dir=str(tmp_path / "cache"))["train"].sort("length")
    rows = ds.select(range(3))  # packed by TRL into one row of exactly their total length
    pack = sum(rows["length"])
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation="sdpa")
    # lengthwise: the same rows packed into one row, positions restarting, token-normalised weights
    samples = [
        (np.asarray(r["input_ids"]), (np.asarray(r["labels"]) != -100).astype(np.float32)) for r in rows
    ]
    n, total = step_totals([w for _, w in samples])
    batch = collate(samples, "token", n, total)
    with torch.no_grad():
        hidden, head = hidden_and_head(model.eval(), batch.input_ids, batch.position_ids)
        ours = float(weighted_loss(hidden, head, batch.targets, batch.target_weights))
    args = SFTConfig(
        output_dir=str(tmp_path / "trl"),
        packing=True,
        padding_free=True,
        max_length=pack,
        per_device_train_batch_size=1,
        max_steps=1,
        learning_rate=1e-5,
        bf16=False,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        dataset_num_proc=None,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=rows, processing_class=AutoTokenizer.from_pretrained(tiny_model)
    )
    assert len(trainer.train_dataset) == 1  # one packed row
    theirs = trainer.train().training_loss
    assert theirs == pytest.approx(ours, rel=1e-5), (theirs, ours)


def test_exports_follow_the_umask_and_a_failed_export_leaves_the_old_one(tiny_shards, tmp_path):
    """Staged in a temporary folder (mkdtemp makes it 0700), published with the umask's permissions."""
    import os
    import stat

    out = tmp_path / "hf"
    old = os.umask(0o027)
    try:
        export_shards(tiny_shards, out)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(Exception, match="no shards with buckets"):
        export_shards(tiny_shards, out, min_length=10**9)
    assert sorted(p.name for p in out.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["hf"]  # no staging folder left behind
