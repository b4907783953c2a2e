"""Honest accounting: valid defaults, cross-field checks reported with field errors, rows above the
last stage counted, tokens_per_step as a target, AdaLoRA's regulariser in the loss."""

from __future__ import annotations

import pytest
import torch
import yaml

from trainer.config import StageConfig, TrainConfig, load_config
from trainer.plan import packs_for_target, plan_stage


def test_default_config_is_valid_and_its_steps_hold_the_longest_stage():
    cfg = TrainConfig()
    assert cfg.step_tokens == 65536 == cfg.stages[-1].max_length


def test_tokens_per_step_is_a_target_rounded_per_stage():
    assert packs_for_target(3000, 1024, 1) == 3  # 3072 tokens: nearest to 3000
    assert packs_for_target(3000, 2048, 1) == 1
    assert packs_for_target(8192, 1024, 2) == 8 and packs_for_target(3000, 1024, 2) == 2
    import numpy as np

    lengths = np.array([300, 500, 700, 900] * 10)
    plan = plan_stage(0, lengths, StageConfig(max_length=1000, tokens=30000), 0, 3000, 1, 0)
    assert plan.packs_per_step == 3 and plan.tokens_per_step == 3000 and len(plan.steps) == 10


def test_cross_field_problems_are_reported_together_with_field_errors(tmp_path):
    from pipeline.errors import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "stages": [{"max_length": 4096, "steps": 1}, {"max_length": 1024, "steps": 1, "tokens": 5}],
                "tokens_per_step": 2048,
                "lora": {"r": 0},
            }
        )
    )
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    msg = str(err.value)
    assert "lora.r" in msg  # a field error...
    assert "must not decrease" in msg and "exactly one of steps or tokens" in msg  # ...and cross-field ones
    assert "tokens_per_step: 2048 is less than stages[0].max_length 4096" in msg


def test_stage_longer_than_every_bucket_is_refused(tiny_model, tiny_shards, tmp_path):
    from pipeline.errors import ConfigError

    path = tmp_path / "t.yaml"
    path.write_text(
        yaml.safe_dump({"data": str(tiny_shards), "model": str(tiny_model), "stages": [{"max_length": 512, "steps": 1},
                                                               {"max_length": 2048, "steps": 1}]})
    )
    with pytest.raises(ConfigError, match=r"stages\[1\]: max_length 2048 is longer than every length bucket"):
        load_config(path)


def test_rows_above_the_last_stage_are_counted(tiny_shards):
    from data_contracts.reader import read_manifest
    from trainer.recipe import load_rows

    cfg = TrainConfig(data=str(tiny_shards), stages=[StageConfig(max_length=400, steps=1)])
    rows, too_long = load_rows(cfg)
    total = read_manifest(tiny_shards).rows
    trained = int((rows.lengths <= 400).sum())
    assert too_long > 0 and trained > 0 and trained + too_long == total


def test_adalora_orthogonal_penalty_matches_peft(tiny_model):
    from peft import AdaLoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from trainer.loss import adalora_orthogonal_penalty

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    model = get_peft_model(
        base, AdaLoraConfig(init_r=4, target_r=2, target_modules=["q_proj", "v_proj"], total_step=10,
                            orth_reg_weight=0.5, task_type="CAUSAL_LM")
    )
    ids = torch.randint(3, 900, (1, 32))
    with torch.no_grad():
        with_reg = model(input_ids=ids, labels=ids).loss
        plain = model.base_model.model(input_ids=ids, labels=ids).loss
    penalty = adalora_orthogonal_penalty(model)
    assert float(penalty.detach()) > 0
    assert float(with_reg - plain) == pytest.approx(float(penalty.detach()), rel=1e-5)
    assert penalty.requires_grad


def test_cli_loaders_report_cross_field_problems_with_field_errors(tmp_path):
    from flows.config import load_run_config, load_train_config
    from pipeline.errors import ConfigError

    train = {"stages": [{"max_length": 4096, "steps": 1}, {"max_length": 1024, "steps": 1}], "lora": {"r": 0}}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"data": "x", **train}))
    with pytest.raises(ConfigError) as err:
        load_train_config(path)
    assert "lora.r" in str(err.value) and "must not decrease" in str(err.value)
    run = tmp_path / "run.yaml"
    run.write_text(yaml.safe_dump({"build": {"sources": [{"path": "docs"}]}, "train": train}))
    with pytest.raises(ConfigError) as err:
        load_run_config(run)
    assert "train.lora.r" in str(err.value) and "train.stages: max_length must not decrease" in str(err.value)
