"""Real model families (Llama-3 with llama3 RoPE, Qwen2 with bias, Mistral), fp32 and bf16:
isolation proof, RoPE stages that keep the model's own scaling, LoRA+ extras that really train."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from tests.model_families import FAMILIES, build_family
from trainer import isolation
from trainer import rope as rope_utils
from trainer.config import LoraSettings, RopeConfig, StageConfig


@pytest.fixture(scope="module")
def texts(sample_corpus):
    return [p.read_text()[:30_000] for p in sorted(sample_corpus.glob("*"))]


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory, texts):
    root = tmp_path_factory.mktemp("families")
    return {
        (f, d): build_family(f, root / f"{f}-{d}", texts, d) for f in FAMILIES for d in ("float32", "bfloat16")
    }


def _load(path, dtype=None):
    from transformers import AutoModelForCausalLM

    from trainer.model import pick_attention

    return AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype or "auto", attn_implementation=pick_attention("auto", torch.device("cpu"))
    )


def _samples(vocab):
    rng = np.random.default_rng(3)
    return [rng.integers(3, vocab - 1, 90), rng.integers(3, vocab - 1, 70)]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("family", FAMILIES)
def test_isolation_proof_holds_per_family_and_dtype(family_dirs, family, dtype, caplog):
    model = _load(family_dirs[(family, dtype)])
    assert model.dtype == getattr(torch, dtype)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with caplog.at_level(logging.INFO, logger="trainer.isolation"):
        report = isolation.prove_isolation(model, _samples(model.config.vocab_size), torch.device("cpu"))
    assert report["compute_dtype"] == "float32" and report["max_rel_diff"] <= 1e-4
    assert "isolation proof: 2 samples ([90, 70] tokens)" in caplog.text
    for n, p in model.named_parameters():  # the fp32 upcast left the weights exactly as they were
        assert p.dtype == before[n].dtype and torch.equal(p, before[n]), n


def test_isolation_proof_catches_a_leak(family_dirs, monkeypatch):
    """Negative control: boundaries dropped (the pack as one sequence) must fail the proof."""
    from trainer import batch as batch_mod

    model = _load(family_dirs[("qwen2", "bfloat16")])
    real = batch_mod.collate

    def leaky(*args, **kw):
        b = real(*args, **kw)
        b.cu_seqlens = torch.tensor([0, b.tokens], dtype=torch.int32)
        return b

    monkeypatch.setattr(isolation, "collate", leaky)
    with pytest.raises(isolation.IsolationError, match="leak"):
        isolation.prove_isolation(model, _samples(model.config.vocab_size), torch.device("cpu"))


def test_llama3_keeps_its_own_scaling_through_rope_stages(family_dirs):
    model = _load(family_dirs[("llama3", "float32")])
    base = rope_utils.base_state(model.config)
    old = model.model.rotary_emb.inv_freq.clone()
    yarn = rope_utils.compose(base, RopeConfig(type="yarn", factor=2.0))
    assert yarn.params["rope_type"] == "llama3" and yarn.params["factor"] == 16.0
    assert yarn.params["original_max_position_embeddings"] == 8192 and yarn.max_positions == 262144
    rope_utils.apply(model, yarn)
    new = model.model.rotary_emb.inv_freq
    assert torch.equal(new[:2], old[:2])  # high frequencies (short wavelengths) untouched
    assert torch.allclose(new[-1], old[-1] / 2)  # lowest frequency stretched a further 2x
    theta = rope_utils.compose(base, RopeConfig(type="theta", theta=2e6))
    assert theta.params["rope_type"] == "llama3" and theta.params["factor"] == 8.0
    assert theta.max_positions == 131072 and theta.params["rope_theta"] == 2e6
    # A stage shorter than the native 131072 needs nothing; max_position_embeddings never shrinks.
    plans = rope_utils.plan_ropes(base, [StageConfig(max_length=65536, steps=1)], auto=False)
    assert plans[0] == base
    lin = rope_utils.compose(base, RopeConfig(type="linear", factor=1.0))
    assert lin.max_positions == 131072


def test_stage_longer_than_context_gets_automatic_yarn_or_a_clear_error(family_dirs, caplog):
    model = _load(family_dirs[("qwen2", "float32")])
    base = rope_utils.base_state(model.config)  # 32768 positions, no scaling
    stages = [StageConfig(max_length=16384, steps=1), StageConfig(max_length=65536, steps=1)]
    with caplog.at_level(logging.WARNING, logger="trainer.rope"):
        plans = rope_utils.plan_ropes(base, stages, auto=True)
    assert plans[0] == base
    assert plans[1].params["rope_type"] == "yarn" and plans[1].params["factor"] == 2.0
    assert plans[1].params["original_max_position_embeddings"] == 32768 and plans[1].max_positions == 65536
    assert "automatic for stages[1]: yarn x2" in caplog.text
    with pytest.raises(ValueError, match=r"stages\[1\]: max_length 65536 is longer than the model's context"):
        rope_utils.plan_ropes(base, stages, auto=False)


def test_saved_rope_file_round_trips(family_dirs, tmp_path):
    model = _load(family_dirs[("llama3", "float32")])
    base = rope_utils.base_state(model.config)
    state = rope_utils.compose(base, RopeConfig(type="yarn", factor=2.0))
    rope_utils.save(tmp_path, state, base)
    loaded = rope_utils.load(tmp_path, model.config)
    assert loaded.params == state.params and loaded.max_positions == 262144


def test_lora_plus_extras_train_in_fp32_on_a_bf16_base(family_dirs):
    from trainer.batch import collate
    from trainer.loss import weighted_loss
    from trainer.model import add_lora, batch_hidden_and_head

    model = add_lora(_load(family_dirs[("llama3", "bfloat16")]), LoraSettings(r=4, alpha=8, plus=True), 10)
    extras = {n: p for n, p in model.named_parameters() if "modules_to_save" in n}
    assert extras and all(p.dtype == torch.float32 and p.requires_grad for p in extras.values())
    start = {n: p.detach().clone() for n, p in extras.items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = _samples(model.config.vocab_size)
    batch = collate([(x, np.ones(len(x), np.float32)) for x in ids], "token", 1, float(sum(map(len, ids))))
    model.train()
    for _ in range(3):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden, head = batch_hidden_and_head(model, batch)
        assert hidden.dtype == torch.bfloat16  # activations stay bf16 despite fp32 norms/embeddings
        weighted_loss(hidden, head, batch.targets, batch.target_weights).backward()
        opt.step()
        opt.zero_grad()
    norms = [n for n in extras if "norm" in n]
    changed = [n for n in norms if not torch.equal(extras[n], start[n])]
    assert norms and changed == norms  # bf16 copies would have rounded a 1e-4 update away
    assert all(opt.state[p]["exp_avg"].dtype == torch.float32 for p in extras.values())
