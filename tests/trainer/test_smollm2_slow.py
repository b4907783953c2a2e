"""SmolLM2 + LoRA over a 512 -> 1K curriculum on real shards: the answer-token loss falls."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_smollm2_curriculum_loss_falls(tmp_path, sample_corpus):
    from pipeline.config import ChunkerConfig, ShardConfig, SynthConfig, TeacherConfig
    from pipeline.stages.chunk import chunk_corpus
    from pipeline.stages.shard import build_shards
    from pipeline.stages.synth import synthesize_corpus
    from trainer.config import StageConfig, TrainConfig
    from trainer.recipe import train

    chunk_corpus(
        [sample_corpus / "kjv-john.txt", sample_corpus / "license-GPL-3.txt"],
        tmp_path / "c",
        ChunkerConfig(max_tokens=512),
    )
    synthesize_corpus(
        [tmp_path / "c"],
        tmp_path / "qa",
        SynthConfig(
            target_lengths=[400, 500, 800, 1000],
            teacher_free_per_length=6,
            teacher_free_tasks=["passkey", "needle_multikey"],
        ),
        TeacherConfig(kind="none"),
    )
    build_shards([tmp_path / "qa"], tmp_path / "s", ShardConfig(bucket_edges=[512, 1024]))
    summary = train(
        TrainConfig(
            data=str(tmp_path / "s"),
            output_dir=str(tmp_path / "t"),
            tokens_per_step=2048,
            stages=[
                StageConfig(max_length=512, steps=6, lr=1e-3),
                StageConfig(max_length=1024, steps=6, lr=1e-3),
            ],
            lora={"r": 16, "alpha": 32, "targets": ["q_proj", "k_proj", "v_proj", "o_proj"]},
        )
    )
    rows = [json.loads(x) for x in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows]
    assert summary["steps"] == 12
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses
