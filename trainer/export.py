"""Take a trained model out of lengthwise: a merged standalone folder or a shareable adapter.

The reference of truth is :func:`trainer.model.load_adapter` (base + adapter + the RoPE it was
trained with). ``--merge`` folds the adapter into the base and writes the RoPE settings into
``config.json`` the way the installed transformers writes them, so plain ``from_pretrained`` (and
servers that read the config, like vLLM) use the trained context length. Without ``--merge`` the
adapter is copied with ``base_model_name_or_path`` set to the name the user gave the base, and a
model card says which config change the base needs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from data_contracts.io import atomic_folder
from pipeline.errors import PipelineError
from trainer.card import write_model_card
from trainer.model import ROPE_FILE
from trainer.runinfo import find_run_info

log = logging.getLogger(__name__)
MARKER = "lengthwise_export.json"
DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
FP16_MAX = 65504.0


class ExportError(PipelineError):
    """The adapter or its base model cannot be exported as asked; the message says why and the fix."""


@dataclass
class ExportSource:
    """The adapter to export and what is known about the run that trained it."""

    adapter: Path
    run_dir: Path | None = None
    run_info: dict | None = None
    stage: int | None = None  # the stage adapter's index; None for the final adapter

    @property
    def rope(self) -> dict | None:
        """The RoPE parameters saved with the adapter (None: the base model's own)."""
        path = self.adapter / ROPE_FILE
        return json.loads(path.read_text()) if path.exists() else None

    @property
    def adapter_config(self) -> dict:
        """The adapter's ``adapter_config.json``."""
        return json.loads((self.adapter / "adapter_config.json").read_text())


def _stage_index(path: Path) -> int | None:
    m = re.fullmatch(r"stage-(\d+)-\d+", path.name)
    return int(m.group(1)) if m else None


def find_adapter(source: str | Path, stage: int | None = None) -> ExportSource:
    """The adapter inside a training output folder (final one, or stage ``stage``), or ``source`` itself."""
    source = Path(source)
    if not source.is_dir():
        raise ExportError(
            f"{source}: no such folder; give a training output folder (e.g. out/demo/train) or an adapter folder"
        )
    stages = sorted((source / "stages").glob("stage-*"), key=lambda p: _stage_index(p) or 0)
    if (source / "adapter_config.json").exists():
        if stage is not None:
            raise ExportError(
                f"{source} is an adapter folder; --stage picks a stage of a training output folder"
            )
        adapter = source
    elif stage is not None:
        hits = [p for p in stages if _stage_index(p) == stage]
        if not hits:
            have = ", ".join(p.name for p in stages) or "none"
            raise ExportError(f"{source}/stages has no stage {stage} adapter (stages there: {have})")
        adapter = hits[0]
    elif (source / "adapter" / "adapter_config.json").exists():
        adapter = source / "adapter"
    elif stages:
        adapter = stages[-1]
        log.warning("%s has no final adapter (training not finished): exporting %s", source, adapter.name)
    else:
        raise ExportError(
            f"{source}: no adapter_config.json, adapter/ or stages/ inside; point at a training output "
            "folder (`lengthwise train` writes one) or an adapter folder"
        )
    found = find_run_info(adapter)
    src = ExportSource(adapter, *(found or (None, None)), stage=_stage_index(adapter))
    if "checkpoints" in adapter.parts and src.rope is None and _run_has_rope(src.run_info):
        raise ExportError(
            f"{adapter}: checkpoint adapters do not carry the RoPE settings of their stage; export a "
            "finished stage (--stage N) or the final adapter"
        )
    return src


def _run_has_rope(info: dict | None) -> bool:
    return bool(info) and any(s.get("rope") for s in info["config"]["stages"])


def _is_lengthwise_cache(spec: str) -> bool:
    p = Path(spec)
    return p.name == "smollm2-135m-instruct" and p.parent.name == "models" and "lengthwise" in p.parts


def base_name(src: ExportSource, base: str | None = None) -> str:
    """The name to record for the base model: ``base`` if given, else what the run was given.

    Never a path inside lengthwise's cache: the embedded SmolLM2 is recorded as its public hub ID.
    """
    from pipeline.assets import SMOLLM2_HUB_ID, public_model_name

    if base is not None:
        return public_model_name(base)
    if src.run_info:
        return src.run_info["base_model"]
    recorded = src.adapter_config.get("base_model_name_or_path")
    if not recorded:
        raise ExportError(
            f"{src.adapter}: the adapter does not name its base model; pass --base NAME_OR_PATH"
        )
    return SMOLLM2_HUB_ID if _is_lengthwise_cache(recorded) else public_model_name(recorded)


def base_folder(src: ExportSource, base: str | None = None) -> str:
    """A local folder (or cached hub model) holding the weights the adapter was trained on.

    Order: ``base`` if given; the folder the run loaded; the recorded name as a folder, a hub ID in
    the local Hugging Face cache (or the hub when online), and for the embedded SmolLM2's public ID
    the packaged weights lengthwise trained on.
    """
    from pipeline.assets import SMOLLM2, SMOLLM2_HUB_ID, resolve_model

    if base is not None:
        candidates = [base]
    else:
        info = src.run_info or {}
        spec = info.get("base_model_spec")
        candidates = [info.get("base_path"), SMOLLM2 if (info and spec is None) else spec]
        candidates.append(src.adapter_config.get("base_model_name_or_path"))
    for spec in [c for c in candidates if c]:
        if spec == SMOLLM2_HUB_ID or _is_lengthwise_cache(spec):
            spec = SMOLLM2  # the packaged weights are the ones trained on (Q4_1 GGUF, dequantized)
        try:
            path = resolve_model(spec)
        except PipelineError:
            continue
        if Path(path).is_dir() or _hub_config(path):
            return path
    raise ExportError(
        f"{src.adapter}: its base model ({', '.join(str(c) for c in candidates if c) or 'unnamed'}) cannot be "
        "found here: not a folder, not in the Hugging Face cache. Pass --base with the folder or hub ID of "
        "the model it was trained on"
    )


def _hub_config(name: str) -> bool:
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name)
    except (OSError, ValueError):
        return False
    return True


def _target_dtype(dtype: str, base_config):
    import torch

    if dtype == "auto":
        stored = getattr(base_config, "dtype", None) or torch.float32
        return getattr(torch, stored) if isinstance(stored, str) else stored
    if dtype not in DTYPES:
        raise ExportError(f"--dtype {dtype!r}: use one of auto, {', '.join(DTYPES)}")
    return getattr(torch, DTYPES[dtype])


def check_mergeable(model, dtype) -> None:
    """Refuse a quantized base, and a dtype whose range the merged weights exceed (fp16 overflow)."""
    import torch

    quant = getattr(model.config, "quantization_config", None)
    if quant:
        raise ExportError(
            f"the base model is quantized ({quant.get('quant_method', quant) if isinstance(quant, dict) else quant}); "
            "LoRA cannot be merged into quantized weights exactly. Export without --merge, or merge into "
            "the unquantized base (--base)"
        )
    if dtype != torch.float16:
        return
    for name, t in model.state_dict().items():
        if t.is_floating_point() and t.numel() and float(t.abs().max()) > FP16_MAX:
            raise ExportError(
                f"--dtype fp16: merged tensor {name} holds values up to {float(t.abs().max()):.3g}, beyond "
                f"fp16's range ({FP16_MAX:.0f}); they would become inf. Use --dtype bf16 or fp32"
            )


@contextlib.contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """``atomic_folder(out)``, refusing an ``out`` that holds something other than an earlier export."""
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise ExportError(f"{out} exists and is not a lengthwise export; choose another --out or delete it")
    with atomic_folder(out) as tmp:
        yield tmp


def export_merged(
    src: ExportSource,
    out: str | Path,
    base: str | None = None,
    dtype: str = "auto",
    max_shard_size: str = "5GB",
) -> Path:
    """Merge the adapter into its base and write a standalone safetensors model folder.

    ``config.json`` carries the adapter's RoPE parameters and ``max_position_embeddings``; the
    tokenizer (chat template included, ``model_max_length`` set to the new length), generation
    config and a model card come along. Merging happens in fp32, then the weights are cast.
    """
    import torch
    from transformers import AutoTokenizer

    from trainer.model import load_adapter

    out = Path(out)
    name, folder = base_name(src, base), base_folder(src, base)
    try:
        peft_model = load_adapter(folder, src.adapter, dtype=torch.float32)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise ExportError(
            f"{src.adapter} cannot be loaded onto the base model {folder}: {exc}; pass --base with the model it was trained on"
        ) from exc
    check_mergeable(peft_model.get_base_model(), None)
    target = _target_dtype(dtype, peft_model.get_base_model().config)
    merged = peft_model.merge_and_unload()
    check_mergeable(merged, target)
    merged = merged.to(target)
    merged.config.use_cache = True
    with _staged(out) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True, max_shard_size=max_shard_size)
        _add_legacy_rope_keys(tmp / "config.json")
        tok = AutoTokenizer.from_pretrained(folder)
        tok.model_max_length = merged.config.max_position_embeddings
        tok.save_pretrained(tmp)
        info = _marker(src, name, merged=True, dtype=str(target).removeprefix("torch."))
        info["max_position_embeddings"] = merged.config.max_position_embeddings
        info["rope_parameters"] = getattr(merged.config, "rope_parameters", None)
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n")
        write_model_card(tmp, src, name, info)
    return out


def _add_legacy_rope_keys(config_json: Path) -> None:
    """Mirror ``rope_parameters`` as ``rope_scaling``/``rope_theta`` for readers of the pre-v5 keys.

    transformers 4.x, vLLM builds on it and GGUF converters read only the old keys; transformers 5
    reads the same values from either (the test loads the folder with the installed version).
    """
    cfg = json.loads(config_json.read_text())
    rope = cfg.get("rope_parameters")
    if not isinstance(rope, dict) or "rope_scaling" in cfg:
        return
    if "rope_theta" in rope:
        cfg.setdefault("rope_theta", rope["rope_theta"])
    if rope.get("rope_type", "default") != "default":
        legacy = {k: v for k, v in rope.items() if k != "rope_theta"}
        cfg["rope_scaling"] = {**legacy, "type": rope["rope_type"]}
    config_json.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def export_adapter(src: ExportSource, out: str | Path, base: str | None = None) -> Path:
    """Copy the adapter with ``base_model_name_or_path`` set to the user's base name, plus a model card."""
    out = Path(out)
    name = base_name(src, base)
    if name.startswith(("/", ".", "~")) and not Path(name).expanduser().is_dir():
        raise ExportError(
            f"{src.adapter}: its base model {name} is not a folder here, so the exported adapter would name "
            "a model nobody can load; pass --base with the base's folder or hub ID"
        )
    with _staged(out) as tmp:
        for f in src.adapter.iterdir():
            if f.is_file() and f.name != "README.md":
                shutil.copy2(f, tmp / f.name)
        cfg = src.adapter_config
        cfg["base_model_name_or_path"] = name
        (tmp / "adapter_config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        info = _marker(src, name, merged=False, dtype=None)
        rope = src.rope
        if rope and rope.get("rope_type") not in (None, "default"):
            info["max_position_embeddings"] = int(
                rope["original_max_position_embeddings"] * rope.get("factor", 1.0)
            )
        info["rope_parameters"] = rope
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n")
        write_model_card(tmp, src, name, info)
    return out


def _marker(src: ExportSource, name: str, merged: bool, dtype: str | None) -> dict:
    from pipeline.version import version

    return {
        "lengthwise_version": version(),
        "source_adapter": str(src.adapter.resolve()),
        "stage": src.stage,
        "base_model": name,
        "merged": merged,
        "dtype": dtype,
    }


def export(
    source: str | Path,
    out: str | Path,
    merge: bool = False,
    dtype: str = "auto",
    stage: int | None = None,
    base: str | None = None,
    max_shard_size: str = "5GB",
) -> Path:
    """``lengthwise export``: find the adapter in ``source`` and write it (merged or not) to ``out``."""
    if dtype != "auto" and dtype not in DTYPES:
        raise ExportError(f"--dtype {dtype!r}: use one of auto, {', '.join(DTYPES)}")
    if not merge and dtype != "auto":
        raise ExportError("--dtype applies to --merge only (an adapter keeps the dtype it was trained in)")
    src = find_adapter(source, stage)
    if merge:
        return export_merged(src, out, base, dtype, max_shard_size)
    return export_adapter(src, out, base)
