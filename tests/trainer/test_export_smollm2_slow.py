"""The SmolLM2 default through a yarn stage, exported merged: plain transformers serves the extension."""

from __future__ import annotations

import json

import pytest
import torch


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_smollm2_yarn_adapter_merged_export(tmp_path, sample_corpus, smollm2_dir):
    from transformers import AutoModelForCausalLM

    from pipeline.assets import SMOLLM2_HUB_ID
    from pipeline.config import ChunkerConfig, ShardConfig, SynthConfig, TeacherConfig
    from pipeline.stages.chunk import chunk_corpus
    from pipeline.stages.shard import build_shards
    from pipeline.stages.synth import synthesize_corpus
    from trainer.config import StageConfig, TrainConfig
    from trainer.export import export
    from trainer.model import load_adapter
    from trainer.recipe import train

    chunk_corpus([sample_corpus / "kjv-john.txt"], tmp_path / "c", ChunkerConfig(max_tokens=512))
    synthesize_corpus(
        [tmp_path / "c"],
        tmp_path / "qa",
        SynthConfig(target_lengths=[400, 900], teacher_free_per_length=2, teacher_free_tasks=["passkey"]),
        TeacherConfig(kind="none"),
    )
    build_shards([tmp_path / "qa"], tmp_path / "s", ShardConfig(bucket_edges=[512, 1024]))
    train(
        TrainConfig(
            data=str(tmp_path / "s"),
            output_dir=str(tmp_path / "t"),
            tokens_per_step=1024,
            stages=[
                StageConfig(max_length=512, steps=1, lr=1e-3),
                StageConfig(max_length=1024, steps=1, lr=1e-3, rope={"type": "yarn", "factor": 2.0}),
            ],
            lora={"r": 8, "alpha": 16, "targets": ["q_proj", "v_proj"]},
            isolation_check=False,
        )
    )
    adapter = json.loads((tmp_path / "t" / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == SMOLLM2_HUB_ID  # not the cache path
    out = export(tmp_path / "t", tmp_path / "model", merge=True, dtype="fp32")
    cfg = json.loads((out / "config.json").read_text())
    native = json.loads((smollm2_dir / "config.json").read_text())["max_position_embeddings"]
    assert cfg["rope_parameters"]["rope_type"] == "yarn" and cfg["rope_parameters"]["factor"] == 2.0
    assert cfg["max_position_embeddings"] == 2 * native
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in (out / "README.md").read_text()
    ids = torch.randint(100, 40000, (1, 1536), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        served = AutoModelForCausalLM.from_pretrained(out).eval()(input_ids=ids).logits
        reference = load_adapter(str(smollm2_dir), tmp_path / "t" / "adapter")(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()(input_ids=ids).logits
    assert torch.allclose(served, reference, atol=1e-4), float((served - reference).abs().max())
    assert (served - base).abs().max() > 1e-2
