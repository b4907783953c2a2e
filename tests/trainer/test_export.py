"""`lengthwise export`: merged models carry the trained RoPE in config.json; adapters name the user's base."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer.config import StageConfig, TrainConfig
from trainer.export import ExportError, export
from trainer.recipe import train

NATIVE = 512  # the base's own positions; the last stage extends them with yarn x4
LONG = 1100  # > NATIVE: only the extended model has trained on such positions' rotations

LOAD_PLAIN = """
import sys
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
ids = load_file(sys.argv[2])["ids"]
with torch.no_grad():
    logits = model(input_ids=ids).logits
assert not [m for m in sys.modules if m.split(".")[0] in ("trainer", "pipeline", "data_contracts")]
save_file({"logits": logits.contiguous()}, sys.argv[3])
"""


@pytest.fixture(scope="module")
def short_model(tiny_model, tmp_path_factory):
    """The tiny model with 512 native positions (same weights and tokenizer)."""
    folder = tmp_path_factory.mktemp("short") / "base"
    shutil.copytree(tiny_model, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["max_position_embeddings"] = NATIVE
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def _train(base, shards, out, lora) -> Path:
    train(
        TrainConfig(
            model=str(base),
            data=str(shards),
            output_dir=str(out),
            stages=[
                StageConfig(max_length=512, steps=1, lr=5e-3),
                StageConfig(max_length=1024, steps=1, lr=5e-3, rope={"type": "yarn", "factor": 4.0}),
            ],
            tokens_per_step=2048,
            precision="fp32",
            isolation_check=False,
            lora={"r": 4, "alpha": 8, **lora},
        )
    )
    return Path(out)


@pytest.fixture(scope="module")
def runs(short_model, tiny_shards, tmp_path_factory):
    """Training runs by adapter kind, each trained once when a test first asks for it."""
    done: dict[str, Path] = {}
    kinds = {"lora": {}, "lora_plus": {"plus": True}, "adalora": {"adalora": True}}

    def get(kind: str) -> Path:
        if kind not in done:
            done[kind] = _train(
                short_model, tiny_shards, tmp_path_factory.mktemp(kind) / "train", kinds[kind]
            )
        return done[kind]

    return get


def _ids() -> torch.Tensor:
    return torch.randint(3, 900, (1, LONG), generator=torch.Generator().manual_seed(0))


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_merged_export_loads_with_plain_transformers(runs, short_model, tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    from trainer.model import load_adapter

    run = runs("lora_plus")  # LoRA+: trained embeddings and norms are merged too
    out = export(run, tmp_path / "model", merge=True, dtype="fp32", max_shard_size="300KB")
    cfg = json.loads((out / "config.json").read_text())
    rope = cfg["rope_parameters"]
    assert (rope["rope_type"], rope["factor"], rope["original_max_position_embeddings"]) == (
        "yarn",
        4.0,
        NATIVE,
    )
    assert cfg["max_position_embeddings"] == 4 * NATIVE
    assert cfg["rope_scaling"]["type"] == "yarn" and cfg["rope_scaling"]["factor"] == 4.0  # pre-v5 readers
    assert (out / "model.safetensors.index.json").exists()  # sharded
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json", "README.md"):
        assert (out / name).exists(), name
    tok_cfg = json.loads((out / "tokenizer_config.json").read_text())
    assert tok_cfg["model_max_length"] == 4 * NATIVE
    assert "im_start" in (
        (out / "chat_template.jinja").read_text()
        if (out / "chat_template.jinja").exists()
        else tok_cfg["chat_template"]
    )

    ids = _ids()
    save_file({"ids": ids}, str(tmp_path / "ids.safetensors"))
    proc = subprocess.run(  # a fresh interpreter with no lengthwise module importable
        [
            sys.executable,
            "-c",
            LOAD_PLAIN,
            str(out),
            str(tmp_path / "ids.safetensors"),
            str(tmp_path / "l.st"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    served = load_file(str(tmp_path / "l.st"))["logits"]
    reference = _logits(load_adapter(str(short_model), run / "adapter"), ids)
    assert torch.allclose(served, reference, atol=1e-4), float((served - reference).abs().max())
    base = AutoModelForCausalLM.from_pretrained(short_model, dtype=torch.float32).eval()
    assert (served - _logits(base, ids)).abs().max() > 1e-3  # not the unextended base


@pytest.mark.parametrize("kind", ["lora", "adalora"])
def test_merged_export_equals_load_adapter(runs, kind, short_model, tmp_path):
    from transformers import AutoModelForCausalLM

    from trainer.model import load_adapter

    out = export(runs(kind), tmp_path / "model", merge=True)
    ids = _ids()
    served = _logits(AutoModelForCausalLM.from_pretrained(out).eval(), ids)
    reference = _logits(load_adapter(str(short_model), runs(kind) / "adapter"), ids)
    assert torch.allclose(served, reference, atol=1e-4), float((served - reference).abs().max())


def test_adapter_export_names_the_users_base_and_loads_with_autopeft(runs, short_model, tmp_path):
    from peft import AutoPeftModelForCausalLM

    from trainer.model import load_adapter

    run = runs("lora_plus")
    trained = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert trained["base_model_name_or_path"] == str(short_model.resolve())  # training records it too
    out = export(run, tmp_path / "adapter")
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(short_model.resolve())
    card = (out / "README.md").read_text()
    assert "needs a config change" in card and '"rope_type": "yarn"' in card and "manifest sha256" in card
    assert "| 1 | 1024 | 1 |" in card  # the stage table
    info = json.loads((out / "lengthwise_export.json").read_text())
    ids = _ids()
    reference = _logits(load_adapter(str(short_model), run / "adapter"), ids)
    # The card's loading line: the base's config change passed as keyword arguments.
    model = AutoPeftModelForCausalLM.from_pretrained(
        str(out),
        rope_parameters=info["rope_parameters"],
        max_position_embeddings=info["max_position_embeddings"],
    ).eval()
    assert torch.allclose(_logits(model, ids), reference, atol=1e-4)
    plain = AutoPeftModelForCausalLM.from_pretrained(str(out)).eval()  # what the card warns about
    assert (_logits(plain, ids) - reference).abs().max() > 1e-3


def test_cli_exports_a_stage_and_refuses_what_it_cannot_do(runs, short_model, tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    lora_run = runs("lora")
    res = CliRunner().invoke(
        app, ["export", str(lora_run), "--stage", "0", "--merge", "--out", str(tmp_path / "s0")]
    )
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "s0" / "config.json").read_text())
    assert cfg["rope_parameters"]["rope_type"] == "default" and cfg["max_position_embeddings"] == NATIVE
    # An adapter copied away from its run, naming a base that is not here.
    lonely = tmp_path / "lonely"
    shutil.copytree(lora_run / "adapter", lonely)
    acfg = json.loads((lonely / "adapter_config.json").read_text())
    (lonely / "adapter_config.json").write_text(json.dumps({**acfg, "base_model_name_or_path": "/gone/base"}))
    with pytest.raises(ExportError, match="cannot be found.*--base"):
        export(lonely, tmp_path / "x", merge=True)
    assert not (tmp_path / "x").exists()
    with pytest.raises(ExportError, match="not a folder here.*--base"):
        export(lonely, tmp_path / "x")  # an adapter naming a missing folder would be useless to share
    export(lonely, tmp_path / "y", merge=True, base=str(short_model))  # --base fixes it
    with pytest.raises(ExportError, match="no stage 5"):
        export(lora_run, tmp_path / "z", stage=5)
    with pytest.raises(ExportError, match="not a lengthwise export"):
        export(lora_run, tmp_path / "lonely", merge=True)  # never overwrites a folder it did not write


def test_fp16_merge_refused_when_weights_overflow(short_model, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    big = tmp_path / "big"
    model = AutoModelForCausalLM.from_pretrained(short_model, dtype=torch.float32)
    with torch.no_grad():
        model.model.norm.weight[0] = 1e6  # a bf16/fp32 model can hold this; fp16 cannot
    model.save_pretrained(big)
    shutil.copy(short_model / "tokenizer.json", big / "tokenizer.json")
    peft = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    peft.save_pretrained(tmp_path / "ad")
    with pytest.raises(ExportError, match="fp16.*model.norm.weight.*bf16"):
        export(tmp_path / "ad", tmp_path / "out", merge=True, dtype="fp16", base=str(big))
    with pytest.raises(ExportError, match="--dtype 'int8'"):
        export(tmp_path / "ad", tmp_path / "out", merge=True, dtype="int8", base=str(big))


def test_embedded_default_is_recorded_by_its_public_name(tmp_path, monkeypatch):
    from pipeline.assets import SMOLLM2_HUB_ID, public_model_name

    monkeypatch.setenv("LENGTHWISE_CACHE", str(tmp_path))
    cached = tmp_path / "models" / "smollm2-135m-instruct"
    cached.mkdir(parents=True)
    assert public_model_name(None) == public_model_name(str(cached)) == SMOLLM2_HUB_ID
    snapshot = tmp_path / "hub" / "models--org--name" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    assert public_model_name(str(snapshot)) == "org/name"
    assert public_model_name("org/other") == "org/other"
