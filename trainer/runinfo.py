"""``run.json`` in a training output folder: what an export needs to describe and rebuild the model.

The training config, the base model under the name the user gave (never a cache path), the folder it
was loaded from, and the identity of the training data (manifest hash and config hash).
"""

from __future__ import annotations

import json
from pathlib import Path

from data_contracts.io import atomic_write_text, sha256_file
from trainer.config import TrainConfig

RUN_INFO = "run.json"


def write_run_info(cfg: TrainConfig, base_path: str, output: Path) -> dict:
    """Write ``output/run.json`` (atomically; identical on resume) and return it."""
    from data_contracts.reader import read_manifest
    from pipeline.assets import public_model_name

    manifest = Path(cfg.data) / "manifest.json"
    info = {
        "base_model": public_model_name(cfg.model),
        "base_model_spec": cfg.model,
        "base_path": base_path,
        "data": cfg.data,
        "data_manifest_sha256": sha256_file(manifest) if manifest.exists() else None,
        "data_config_hash": read_manifest(cfg.data).config_hash if manifest.exists() else None,
        "config": cfg.model_dump(mode="json"),
    }
    atomic_write_text(output / RUN_INFO, json.dumps(info, indent=2) + "\n")
    return info


def find_run_info(adapter_dir: Path) -> tuple[Path, dict] | None:
    """The run folder holding ``adapter_dir`` (``RUN/adapter``, ``RUN/stages/X``) and its run.json."""
    for parent in list(Path(adapter_dir).resolve().parents)[:3]:
        if (parent / RUN_INFO).exists():
            return parent, json.loads((parent / RUN_INFO).read_text())
    return None
