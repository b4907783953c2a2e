"""Tokenizer fingerprints: shards remember which tokenizer made them; train and eval check it.

Token ids only mean something to the tokenizer that produced them. A shard folder tokenized with
one model and trained on another would run to the end and learn noise, so every tokenized build's
manifest records the fingerprint of its tokenizer and the trainer and the evaluation refuse a
folder whose fingerprint differs from their model's.
"""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from pathlib import Path

from data_contracts import content_hash

log = logging.getLogger(__name__)


@lru_cache(maxsize=16)
def _fingerprint(spec: str | None) -> str:
    from pipeline.tokenizer import load_tokenizer

    tk = json.loads(load_tokenizer(spec).backend.to_str())
    # Vocabulary, merges, added tokens and the text rules: what maps text to ids (not padding or truncation).
    return content_hash(*(tk.get(k) for k in ("model", "added_tokens", "normalizer", "pre_tokenizer")))


def tokenizer_fingerprint(spec: str | os.PathLike[str] | None) -> str:
    """Fingerprint of a model's tokenizer (a model folder, ``tokenizer.json``, hub ID or ``None``)."""
    return _fingerprint(str(spec) if spec is not None else None)


def check_shards_tokenizer(data: str | Path, model: str | os.PathLike[str] | None, who: str) -> None:
    """Refuse shards made with another tokenizer than ``model``'s; the error names both and the fix."""
    from pipeline.errors import InputError
    from pipeline.validate import load_manifest

    manifest = load_manifest(data)
    if manifest.tokenizer_fingerprint is None:
        log.warning("%s: no tokenizer fingerprint (built by an older lengthwise); not checked", data)
        return
    mine = tokenizer_fingerprint(model)
    if mine == manifest.tokenizer_fingerprint:
        return
    name = str(model) if model is not None else "the packaged SmolLM2 (default)"
    raise InputError(
        f"{data}: these shards were tokenized with '{manifest.tokenizer}' (tokenizer fingerprint "
        f"{manifest.tokenizer_fingerprint}) but {who} uses model {name} (fingerprint {mine}); token ids "
        f"of one tokenizer are noise to another. Re-shard with the {who} model (`lengthwise shard ... "
        f"--tokenizer {model or 'smollm2-135m'}`, or name it once as `model:` at the top of the run config), "
        f"or set the {who} model to '{manifest.tokenizer}'"
    )


__all__ = ["check_shards_tokenizer", "tokenizer_fingerprint"]
