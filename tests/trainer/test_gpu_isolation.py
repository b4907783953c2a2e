"""The isolation proof on CUDA for every lengthwise attention path, on tiny models of each family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.model_families import FAMILIES, build_family

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _backends():
    from trainer.attention import flash_available

    return (["flash"] if flash_available() else []) + ["flex", "sdpa"]


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory, sample_corpus):
    texts = [p.read_text()[:30_000] for p in sorted(sample_corpus.glob("*"))]
    root = tmp_path_factory.mktemp("gpu-families")
    return {f: build_family(f, root / f, texts, "bfloat16") for f in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_isolation_proof_on_cuda(family_dirs, family):
    from transformers import AutoModelForCausalLM

    from trainer.attention import attn_name, register
    from trainer.isolation import prove_isolation

    register()
    model = AutoModelForCausalLM.from_pretrained(family_dirs[family], dtype=torch.bfloat16).cuda()
    rng = np.random.default_rng(0)
    samples = [rng.integers(3, model.config.vocab_size - 1, n) for n in (300, 211)]
    for backend in _backends():
        model.config._attn_implementation = attn_name(backend)
        report = prove_isolation(model, samples, torch.device("cuda"))
        assert report["max_rel_diff"] <= report["tolerance"], (backend, report)
