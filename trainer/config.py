"""Typed training configuration: the curriculum is data, validated all at once."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_STAGES = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RopeConfig(_Strict):
    """RoPE change applied when a stage runs (and saved with the adapter)."""

    type: Literal["linear", "dynamic", "yarn", "theta"]
    factor: float = Field(1.0, ge=1.0, description="linear/dynamic/yarn scaling factor")
    theta: float | None = Field(None, gt=0, description="new rope_theta (type theta)")


class StageConfig(_Strict):
    """One curriculum stage: packs of ``max_length`` tokens for ``steps`` optimizer steps."""

    max_length: int = Field(ge=16)
    steps: int | None = Field(None, ge=1)
    tokens: int | None = Field(None, ge=1, description="alternative to steps: tokens to train on")
    lr: float = Field(2e-4, gt=0)
    warmup_steps: int = Field(0, ge=0)
    replay_share: float = Field(0.0, ge=0, lt=1, description="share of samples drawn from shorter buckets")
    rope: RopeConfig | None = None
    gate_min_accuracy: float | None = Field(
        None,
        ge=0,
        le=1,
        description="passkey accuracy needed at this stage's length before moving on (needs gate_haystack)",
    )


class LoraSettings(_Strict):
    """LoRA through peft."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    targets: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    plus: bool = Field(
        False, description="LoRA+ (LongLoRA): also train embeddings and norms, saved with the adapter"
    )
    adalora: bool = Field(False, description="use AdaLoRA (adaptive ranks) instead of LoRA")


class ParallelConfig(_Strict):
    """How several processes share the work (see trainer/parallel.py); ignored in one process."""

    data: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="ddp: replicated weights, gradients summed once per step; fsdp: FSDP2 shards per decoder layer",
    )
    sequence: int = Field(
        1, ge=1, description="Ulysses sequence parallel degree: ranks that split each pack's tokens"
    )
    mixed_precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="fsdp compute dtype: auto = bf16 on CUDA, fp32 on CPU; trainable params stay fp32"
    )


class TrainConfig(_Strict):
    """Everything a training run needs; YAML files map onto it one to one."""

    model: str | None = Field(None, description="base model folder/hub ID (default: packaged SmolLM2)")
    data: str = Field("", description="folder written by `lengthwise shard` (set by the run flow when empty)")
    output_dir: str = "out/train"
    stages: list[StageConfig] = Field(
        default_factory=lambda: [StageConfig(max_length=n, steps=10) for n in DEFAULT_STAGES]
    )
    tokens_per_step: int | None = Field(
        None,
        ge=16,
        description="target tokens per optimizer step, constant across stages: each stage takes "
        "round(tokens_per_step / max_length) packs per step (default: the longest stage's max_length)",
    )
    loss_norm: Literal["sequence", "token"] = "sequence"
    lora: LoraSettings = Field(default_factory=LoraSettings)
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto",
        description="auto: bf16 autocast on CUDA, fp32 on CPU (CPU bf16 autocast measured ~30x slower here)",
    )
    gradient_checkpointing: bool = True
    offload_activations: bool = Field(
        False, description="keep checkpointed activations in host memory (GPU, 32K+)"
    )
    attn_implementation: Literal["auto", "sdpa", "flash_attention_2", "flex_attention", "eager"] = Field(
        "auto",
        description="auto: FlashAttention-2 varlen on CUDA when installed, else flex; per-document SDPA on "
        "CPU (trainer/attention.py). eager: transformers' dense-mask path, for comparison only",
    )
    auto_rope: bool = Field(
        True,
        description="a stage longer than the model's context without a rope setting gets YaRN with the "
        "needed factor (logged); off: such a stage is an error",
    )
    ce_chunk_tokens: int = Field(
        2048, ge=64, description="tokens per cross-entropy chunk (no full fp32 logits)"
    )
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    seed: int = 0
    checkpoint_every: int = Field(50, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(1, ge=1)
    isolation_check: bool = Field(True, description="prove packed == unpacked losses before training")
    trust_remote_code: bool = False
    parallel: ParallelConfig = Field(default_factory=ParallelConfig)
    quantize: Literal["4bit"] | None = Field(
        None, description="4bit: QLoRA, the frozen base in bitsandbytes NF4 (CUDA; extra `qlora`)"
    )
    launcher: Literal["python", "torchrun"] = Field(
        "python", description="run flow: train in-process, or as a torchrun subprocess on this machine"
    )
    nproc_per_node: int = Field(1, ge=1, description="processes torchrun starts (launcher: torchrun)")
    gate_haystack: list[str] = Field(default_factory=list, description="documents for stage-gate probes")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        problems = cross_field_problems(self.model_dump())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def raw_problems(cls, raw: dict) -> list[str]:
        """Cross-field problems of a raw (possibly invalid) mapping, for reporting with field errors."""
        return cross_field_problems(raw)

    @property
    def step_tokens(self) -> int:
        """Target tokens per optimizer step (constant across stages)."""
        return self.tokens_per_step or max(s.max_length for s in self.stages)


def cross_field_problems(raw: dict) -> list[str]:
    """Problems between fields, found on raw (possibly invalid) config values, all at once."""
    problems = []
    stages = [s for s in (raw.get("stages") or []) if isinstance(s, dict)]
    if "stages" in raw and not raw.get("stages"):
        problems.append("stages: at least one stage is needed")
    lengths = [s.get("max_length") for s in stages]
    known = [x for x in lengths if isinstance(x, int)]
    if known != sorted(known):
        problems.append(f"stages: max_length must not decrease from one stage to the next ({known})")
    for i, s in enumerate(stages):
        if (s.get("steps") is None) == (s.get("tokens") is None):
            problems.append(f"stages[{i}]: give exactly one of steps or tokens")
    tps = raw.get("tokens_per_step")
    if isinstance(tps, int) and known and tps < max(known):
        i = known.index(max(known))
        problems.append(
            f"tokens_per_step: {tps} is less than stages[{i}].max_length {max(known)}; a step holds at "
            f"least one pack, so raise tokens_per_step to at least {max(known)} (or leave it unset)"
        )
    gates = any(s.get("gate_min_accuracy") is not None for s in stages)
    if gates and not raw.get("gate_haystack"):
        problems.append("gate_haystack: stage gates need documents for their passkey probes")
    return problems


def data_problems(cfg: TrainConfig) -> list[str]:
    """Problems between the config and its data folder (stages longer than every length bucket)."""
    if not cfg.data or not (Path(cfg.data) / "manifest.json").exists():
        return []
    from data_contracts.reader import read_manifest
    from pipeline.fingerprint import check_shards_tokenizer

    # Shards of another tokenizer are the more basic mistake: say that first, not their buckets.
    check_shards_tokenizer(cfg.data, cfg.model, "train")
    edges = read_manifest(cfg.data).bucket_edges
    if not edges:
        return []
    return [
        f"stages[{i}]: max_length {s.max_length} is longer than every length bucket of {cfg.data} "
        f"(longest {max(edges)}): it has no samples of its own. Drop the stage or rebuild the shards "
        f"with shard.bucket_edges reaching {s.max_length}"
        for i, s in enumerate(cfg.stages)
        if s.max_length > max(edges)
    ]


def load_config(path: str | Path) -> TrainConfig:
    """Read a YAML config; every problem is reported at once with its field."""
    from pipeline.errors import ConfigError

    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([str(exc)], str(path)) from exc
    if not isinstance(raw, dict):
        raise ConfigError(["config: expected a mapping of fields"], str(path))
    try:
        cfg = TrainConfig.model_validate(raw)
    except ValidationError as exc:
        fields = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors() if e["loc"]]
        cross = cross_field_problems(raw) or [
            e["msg"].removeprefix("Value error, ") for e in exc.errors() if not e["loc"]
        ]
        raise ConfigError(fields + cross, str(path)) from exc
    problems = data_problems(cfg)
    if problems:
        raise ConfigError(problems, str(path))
    return cfg
