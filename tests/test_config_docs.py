"""docs/config.md is generated from the config models; it must match them, and mistakes get a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_config_reference_is_up_to_date():
    from pipeline.cli.config_docs_cmd import render_config_docs

    current = (REPO / "docs" / "config.md").read_text()
    assert current == render_config_docs(), (
        "docs/config.md is stale: regenerate it with `lengthwise config-docs --out docs/config.md`"
    )


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("base_model", "did you mean model"),
        ("sequence_len", "train.stages[].max_length"),
        ("lora_r", "train.lora.r"),
        ("lora_target_modules", "train.lora.targets"),
        ("learning_rate", "train.stages[].lr"),
    ],
)
def test_foreign_config_names_get_a_pointer(tmp_path, key, hint):
    from flows.config import load_train_config
    from pipeline.errors import ConfigError

    path = tmp_path / "t.yaml"
    path.write_text(f"data: x\n{key}: 1\n")
    with pytest.raises(ConfigError) as err:
        load_train_config(path)
    assert key in str(err.value) and hint in str(err.value)


def test_typos_get_the_closest_field_and_set_overrides_nested_fields(tmp_path):
    from flows.config import load_run_config, load_train_config
    from pipeline.errors import ConfigError

    path = tmp_path / "run.yaml"
    path.write_text(
        "model: my/model\nbuild: {sources: [{path: docs}]}\n"
        "train: {stages: [{max_length: 64, steps: 1}], lora: {alpah: 4}}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_run_config(path)
    assert "train.lora.alpah" in str(err.value) and "did you mean 'alpha'" in str(err.value)
    cfg = load_run_config(path, ["train.lora.alpah=", "train.lora.r=4", "train.stages.0.lr=0.001"])
    assert cfg.train.lora.r == 4 and cfg.train.stages[0].lr == 0.001
    # The base model named once reaches every stage that tokenizes or loads weights.
    assert cfg.build.chunker.tokenizer == cfg.build.synth.student_tokenizer == cfg.build.shard.tokenizer
    assert cfg.train.model == "my/model" and cfg.build.shard.tokenizer == "my/model"
    train = load_train_config(path, ["lora.alpah=", "lora.r=2"])  # relative to the command's own section
    assert train.lora.r == 2 and train.data.endswith("out/build/shards")
