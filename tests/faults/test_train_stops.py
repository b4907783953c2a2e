"""A two-stage run stopped at every step boundary, then resumed, equals the uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.config import StageConfig, TrainConfig
from trainer.recipe import StageGateFailed, train

STEPS = 2  # per stage: boundaries after steps 1, 2 (the stage change) and 3


def _cfg(tiny_model, tiny_shards, out: Path, **stage0) -> TrainConfig:
    return TrainConfig(
        model=str(tiny_model),
        data=str(tiny_shards),
        output_dir=str(out),
        stages=[
            StageConfig(max_length=512, steps=STEPS, lr=5e-3, **stage0),
            StageConfig(max_length=1024, steps=STEPS, lr=5e-3),
        ],
        tokens_per_step=1024,
        checkpoint_every=1,
        precision="fp32",
        lora={"r": 4, "alpha": 8, "dropout": 0.0},
        isolation_check=False,
        gate_haystack=[str(Path(__file__).resolve().parents[2] / "samples" / "corpus" / "kjv-john.txt")]
        if stage0
        else [],
    )


def _outputs(out: Path) -> dict:
    losses = {r["step"]: r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())}
    adapters = {
        str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob("**/adapter_model.safetensors"))
    }
    adapters = {k: v for k, v in adapters.items() if not k.startswith("checkpoints")}
    return {"losses": losses, "adapters": adapters}


@pytest.fixture(scope="module")
def uninterrupted(tiny_model, tiny_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    train(_cfg(tiny_model, tiny_shards, out))
    return _outputs(out)


@pytest.mark.parametrize("stop", range(1, 2 * STEPS))
def test_stop_at_a_step_boundary_then_resume(stop, uninterrupted, tiny_model, tiny_shards, tmp_path):
    cfg = _cfg(tiny_model, tiny_shards, tmp_path / "run")
    assert train(cfg, stop_at=stop) == {"stopped_at": stop}
    train(cfg)
    got = _outputs(tmp_path / "run")
    assert sorted(got["adapters"]) == sorted(uninterrupted["adapters"]), "a stage adapter was lost"
    assert got == uninterrupted


def test_the_gate_runs_before_the_checkpoint_moves_on(tiny_model, tiny_shards, tmp_path):
    cfg = _cfg(tiny_model, tiny_shards, tmp_path / "gated", gate_min_accuracy=1.0)
    with pytest.raises(StageGateFailed):  # a random tiny model cannot pass a passkey gate
        train(cfg, stop_at=STEPS)  # stopping right at the stage's last step must not skip the gate
    states = sorted((tmp_path / "gated" / "checkpoints").glob("step-*/state.json"))
    assert json.loads(states[-1].read_text())["stage"] == 0, "the checkpoint moved on past a failed gate"
    assert list((tmp_path / "gated" / "stages").glob("stage-0-512/adapter_model.safetensors"))
    with pytest.raises(StageGateFailed):  # and a rerun checks the gate again instead of skipping it
        train(cfg)
