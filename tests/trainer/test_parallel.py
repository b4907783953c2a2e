"""Two processes on CPU (torchrun, gloo): DDP, FSDP2 and Ulysses sequence parallel against one process.

Tolerances: per-step losses rel 1e-5 and adapters within 1e-3 of each tensor's largest entry against
one process (only the order of float sums differs: 2-way all-reduce, split attention heads; Adam turns
a 1e-7 gradient difference on a near-zero entry into an update difference near 1e-6, so an
elementwise atol of 1e-6 is below float noise); a SIGKILLed 2-process
run and its resume are compared bit for bit with an uninterrupted 2-process run.
"""

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

from tests.servers import free_port
from trainer.config import TrainConfig
from trainer.recipe import train

HERE = Path(__file__).parent


def _cfg(tiny_model, tiny_shards, out, steps=4, dropout=0.0, **kw) -> TrainConfig:
    return TrainConfig(
        model=str(tiny_model),
        data=str(tiny_shards),
        output_dir=str(out),
        stages=[{"max_length": 512, "steps": steps, "lr": 5e-3}],
        tokens_per_step=2048,
        checkpoint_every=2,
        precision="fp32",
        lora={"r": 4, "alpha": 8, "dropout": dropout},
        **kw,
    )


def _torchrun(args: list[str], extra_env: dict | None = None, **popen) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd(), **(extra_env or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    return subprocess.Popen([*cmd, "--master-port", str(free_port()), *args], env=env, **popen)


def _train_2proc(cfg: TrainConfig, tmp: Path, launcher: str = "torchrun") -> None:
    """Train with 2 processes started by torchrun, accelerate launch, or the run flow's launcher."""
    if launcher == "flow":
        from trainer.launch import train as launch

        launch(cfg.model_copy(update={"launcher": "torchrun", "nproc_per_node": 2}))
        return
    path = tmp / f"{Path(cfg.output_dir).name}.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    pipe = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    if launcher == "accelerate":
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
        cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        proc = subprocess.Popen(
            [*cmd, "--main_process_port", str(free_port()), "-m", "trainer", str(path)], env=env, **pipe
        )
    else:
        proc = _torchrun(["-m", "trainer", str(path)], **pipe)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]


def _losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())}


def _adapter(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "adapter" / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def one_process(tiny_model, tiny_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    train(_cfg(tiny_model, tiny_shards, out))
    return out


@pytest.mark.parametrize(
    ("layout", "launcher"),
    [
        ({"data": "ddp"}, "flow"),
        ({"data": "fsdp"}, "accelerate"),
        ({"data": "ddp", "sequence": 2}, "torchrun"),
    ],
    ids=["ddp-flow-launcher", "fsdp2-accelerate", "sp2-torchrun"],
)
def test_two_processes_match_one(
    layout, launcher, one_process, tiny_model, tiny_shards, tmp_path, monkeypatch
):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", os.getcwd())
    cfg = _cfg(tiny_model, tiny_shards, tmp_path / "two", parallel=layout)
    _train_2proc(cfg, tmp_path, launcher)
    a, b = _losses(one_process), _losses(tmp_path / "two")
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-5), step
    wa, wb = _adapter(one_process), _adapter(tmp_path / "two")
    assert wa.keys() == wb.keys() and len(wa) == 16
    for k in wa:
        worst, scale = float((wa[k] - wb[k]).abs().max()), float(wa[k].abs().max())
        assert worst <= 1e-3 * scale + 1e-9, (k, worst, scale)
    assert any(float((wa[k]).abs().max()) > 0 for k in wa if "lora_B" in k)  # the adapter trained


def test_sigkilled_fsdp_run_with_dropout_resumes_bit_identically(tiny_model, tiny_shards, tmp_path):
    ref = _cfg(tiny_model, tiny_shards, tmp_path / "ref", steps=6, dropout=0.1, parallel={"data": "fsdp"})
    _train_2proc(ref, tmp_path)
    cfg = ref.model_copy(update={"output_dir": str(tmp_path / "run")})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    proc = _torchrun(
        ["-m", "trainer", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 400
    while time.time() < deadline:  # kill after the step-2 checkpoint, mid-stage
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
    proc.wait()
    assert len(metrics.read_text().splitlines()) < 6, "the run finished before it could be killed"
    assert (tmp_path / "run" / "checkpoints" / "step-0000002" / "rng-rank1.pt").exists()
    _train_2proc(cfg, tmp_path)  # resumes from step 2
    expected, resumed = _losses(tmp_path / "ref"), _losses(tmp_path / "run")
    assert sorted(resumed) == list(range(1, 7))
    assert resumed == expected  # bit-identical, dropout included
    wa, wb = _adapter(tmp_path / "ref"), _adapter(tmp_path / "run")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_sequence_parallel_per_sample_losses_and_grads_equal_one_process(tiny_model, tmp_path, monkeypatch):
    # A fixed mmap threshold makes glibc hand large blocks back to the OS, so the memory cap in
    # sp_check.py counts what each step holds, not what an earlier step left in malloc's free lists.
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    out = tmp_path / "sp.json"
    proc = _torchrun([str(HERE / "sp_check.py"), str(tiny_model), str(out)])
    assert proc.wait(timeout=600) == 0
    r = json.loads(out.read_text())
    assert r["grad_params"] == 16  # LoRA A and B of q, k, v, o in both layers
    for single, sp in zip(r["losses_single"], r["losses_sp"], strict=True):
        assert sp == pytest.approx(single, rel=1e-6)
    assert r["grad_max_abs_diff"] <= 1e-5 * r["grad_max_abs"]
    # A pack one process cannot train within the budget trains under sequence parallel 2.
    assert r["pack_tokens"] == 24_000 and r["budget_mib"] == 160
    assert r["capped_single"] == "out of memory"
    assert r["capped_sp"] == "ok" and r["capped_sp_grads"]


@pytest.mark.parametrize("family", ["qwen2", "llama3"])
def test_sequence_parallel_matches_one_process_on_other_families_in_bf16(family, sample_corpus, tmp_path):
    """Ulysses on a Qwen2 (bias, tied embeddings) and a Llama-3 (llama3 RoPE) model, bf16 weights."""
    from tests.model_families import build_family

    texts = [p.read_text()[:30_000] for p in sorted(sample_corpus.glob("*"))]
    model = build_family(family, tmp_path / family, texts, "bfloat16")
    out = tmp_path / "sp.json"
    extra = {"SP_CHECK_PRECISION": "bf16", "SP_CHECK_MEMORY": "0"}
    proc = _torchrun([str(HERE / "sp_check.py"), str(model), str(out)], extra_env=extra)
    assert proc.wait(timeout=600) == 0
    r = json.loads(out.read_text())
    assert r["model_type"] == {"llama3": "llama"}.get(family, family) and r["base_dtype"] == "torch.bfloat16"
    assert r["grad_params"] == 16
    for single, sp in zip(r["losses_single"], r["losses_sp"], strict=True):
        assert sp == pytest.approx(single, rel=1e-4)  # measured: equal (attention math runs in fp32)
    assert r["grad_max_abs_diff"] <= 1e-3 * r["grad_max_abs"]  # measured: 3e-7 of the largest


def test_sequence_degree_must_divide_the_processes(tiny_model, tiny_shards, tmp_path):
    from trainer import parallel
    from trainer.distributed import World

    cfg = _cfg(tiny_model, tiny_shards, tmp_path, parallel={"sequence": 2})
    with pytest.raises(ValueError, match="must divide the number of processes"):
        parallel.check(cfg, World(0, 3))


def test_split_pads_with_a_zero_weight_document_and_keeps_the_pack_boundaries():
    import numpy as np

    from trainer.batch import collate
    from trainer.sequence import split

    samples = [(np.arange(3, 7), np.ones(4, np.float32)), (np.arange(10, 13), np.ones(3, np.float32))]
    batch = collate(samples, "token", 2, 5.0)  # 7 tokens: padded to 8 for 2 ranks
    parts = [split(batch, r, 2) for r in range(2)]
    assert [p.tokens for p, _ in parts] == [4, 4]
    assert parts[0][1] == parts[1][1] == [0, 4, 7, 8]
    assert parts[1][0].input_ids[0, -1] == 0 and parts[1][0].target_weights[-1] == 0
    whole = torch.cat([p.target_weights for p, _ in parts])
    assert torch.equal(whole[:7], batch.target_weights)
