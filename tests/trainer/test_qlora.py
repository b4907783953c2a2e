"""QLoRA (quantize: 4bit): a clear error on CPU; on a CUDA GPU with bitsandbytes, a real NF4 training step."""

from __future__ import annotations

import pytest
import torch

from trainer.config import TrainConfig


def _cfg(tiny_model, out, **kw) -> TrainConfig:
    return TrainConfig(
        model=str(tiny_model),
        data="unused",
        output_dir=str(out),
        stages=[{"max_length": 512, "steps": 1}],
        tokens_per_step=512,
        quantize="4bit",
        lora={"r": 4, "alpha": 8},
        **kw,
    )


def test_4bit_on_cpu_fails_naming_the_fix(tiny_model, tmp_path):
    from trainer.model import load_base

    with pytest.raises(RuntimeError, match="needs a CUDA GPU.*remove `quantize`"):
        load_base(_cfg(tiny_model, tmp_path), torch.device("cpu"))


@pytest.mark.gpu
def test_4bit_base_trains_lora_on_cuda(tiny_model, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    from trainer.batch import collate
    from trainer.loss import weighted_loss
    from trainer.model import add_lora, hidden_and_head, load_base

    cfg = _cfg(tiny_model, tmp_path)
    model, _ = load_base(cfg, torch.device("cuda", 0))
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    model = add_lora(model, cfg.lora, 10)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)
    ids = torch.randint(3, 900, (200,)).numpy()
    w = torch.ones(200).numpy()
    b = collate([(ids, w)], "token", 1, float(w[1:].sum())).to("cuda")
    opt = torch.optim.AdamW(trainable, lr=1e-2)
    before = [p.detach().clone() for p in trainable]
    for _ in range(2):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            hidden, head = hidden_and_head(model, b.input_ids, b.position_ids)
        loss = weighted_loss(hidden, head, b.targets, b.target_weights)
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, p) for a, p in zip(before, trainable, strict=True))
