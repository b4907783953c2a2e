"""The recipe end to end on the tiny model: curriculum, exact resume after SIGKILL, adapters (DDP/FSDP: test_parallel)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from trainer.config import StageConfig, TrainConfig, load_config
from trainer.recipe import train


def _cfg(tiny_model, tiny_shards, out, **kw) -> TrainConfig:
    base = dict(
        model=str(tiny_model),
        data=str(tiny_shards),
        output_dir=str(out),
        stages=[
            StageConfig(max_length=512, steps=4, lr=5e-3),
            StageConfig(max_length=1024, steps=4, lr=5e-3, rope={"type": "linear", "factor": 2.0}),
        ],
        tokens_per_step=2048,
        checkpoint_every=2,
        precision="fp32",
        lora={"r": 4, "alpha": 8, "dropout": 0.1},
    )
    base.update(kw)
    return TrainConfig(**base)


def _losses(out: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


@pytest.fixture(scope="module")
def reference(tiny_model, tiny_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    summary = train(_cfg(tiny_model, tiny_shards, out))
    return out, summary


def test_curriculum_runs_and_writes_everything(reference):
    out, summary = reference
    assert summary["steps"] == 8 and [s["max_length"] for s in summary["stages"]] == [512, 1024]
    assert summary["stages"][0]["deferred"] > 0  # samples too long for stage 0 waited for stage 1
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage_length"] for r in rows] == [512] * 4 + [1024] * 4
    assert {r["tokens"] for r in rows} <= set(range(1, 2049)) and all(r["pack_fill"] > 0.5 for r in rows)
    assert (out / "loss_by_stage.png").stat().st_size > 5000
    assert list((out / "tensorboard").glob("events.*"))
    assert (out / "adapter" / "adapter_model.safetensors").exists() and (
        out / "adapter" / "lengthwise_rope.json"
    ).exists()
    assert sorted(p.name for p in (out / "stages").iterdir()) == ["stage-0-512", "stage-1-1024"]


def test_sigkill_mid_stage_then_resume_gives_identical_losses(reference, tiny_model, tiny_shards, tmp_path):
    ref_out, _ = reference
    cfg = _cfg(tiny_model, tiny_shards, tmp_path / "run")
    cfg_path = tmp_path / "train.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", str(cfg_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:  # kill during stage 0, after the step-2 checkpoint
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(metrics.read_text().splitlines()) < 8, "the run finished before it could be killed"
    train(cfg)  # resumes from the latest checkpoint
    resumed, expected = _losses(tmp_path / "run"), _losses(ref_out)
    assert sorted(resumed) == sorted(expected) == list(range(1, 9))
    for step in expected:
        assert resumed[step] == pytest.approx(expected[step], rel=1e-6, abs=1e-7), step


def test_saved_adapter_reloads_with_identical_logits(tiny_model, tiny_shards, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from trainer.model import load_adapter
    from trainer.recipe import setup

    cfg = _cfg(
        tiny_model,
        tiny_shards,
        tmp_path / "a",
        stages=[StageConfig(max_length=512, steps=2, lr=5e-3)],
        lora={"r": 4, "alpha": 8, "plus": True},
    )
    train(cfg)
    run_model = setup(cfg.model_copy(update={"output_dir": str(tmp_path / "a")})).model.eval()
    ids = torch.randint(3, 900, (1, 64))
    with torch.no_grad():
        expected = run_model(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
        reloaded = PeftModel.from_pretrained(base, str(tmp_path / "a" / "adapter")).eval()
        assert torch.allclose(reloaded(input_ids=ids).logits, expected, atol=1e-5)
        again = load_adapter(str(tiny_model), tmp_path / "a" / "adapter")
        assert torch.allclose(again(input_ids=ids).logits, expected, atol=1e-5)
    saved = set(load_keys(tmp_path / "a" / "adapter"))
    assert any("embed_tokens" in k for k in saved) and any("norm" in k for k in saved)  # LoRA+ extras


def load_keys(folder: Path):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors")).keys()


def test_rope_scaling_is_applied_and_saved(reference, tiny_model):
    out, _ = reference
    rope = json.loads((out / "adapter" / "lengthwise_rope.json").read_text())
    assert rope["rope_type"] == "linear" and rope["factor"] == 2.0
    context = json.loads((out / "adapter" / "lengthwise_context.json").read_text())
    assert context["max_position_embeddings"] == 2 * context["base_max_position_embeddings"]
    from trainer.model import load_adapter

    model = load_adapter(str(tiny_model), out / "adapter")
    assert model.get_base_model().config.rope_parameters["rope_type"] == "linear"


def test_config_with_several_mistakes_lists_them_all(tmp_path):
    from pipeline.errors import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "data": "x",
                "stages": [{"max_length": 1024}, {"max_length": 512, "steps": 1}],
                "lora": {"r": 0},
                "typo_field": 1,
            }
        )
    )
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    msg = str(err.value)
    assert "lora.r" in msg and "typo_field" in msg


def test_train_cli(tiny_model, tiny_shards, tmp_path):
    cfg = _cfg(tiny_model, tiny_shards, tmp_path / "cli", stages=[StageConfig(max_length=512, steps=1)])
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "train", str(path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "cli" / "summary.json").read_text())["steps"] == 1
