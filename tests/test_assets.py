"""The embedded default models load offline and work for real."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import assets


def test_packaged_minilm_embeds_real_sentences():
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(assets.minilm_path()), device="cpu")
    sentences = [
        "The pass key is hidden in the text.",
        "Remember the hidden pass key in this document.",
        "Genesis tells of the creation of the heavens and the earth.",
    ]
    emb = model.encode(sentences, normalize_embeddings=True)
    assert emb.shape == (3, 384)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.2, sim


def test_smollm2_is_converted_once_to_safetensors(smollm2_dir):
    assert (smollm2_dir / "model.safetensors").exists()
    assert (smollm2_dir / "tokenizer.json").exists()
    assert not list(smollm2_dir.glob("*.bin")), "weights must be safetensors, never pickle"
    assert assets.smollm2_path() == smollm2_dir  # idempotent: no second conversion


def test_resolve_model_accepts_aliases_paths_and_hub_ids(tmp_path, smollm2_dir):
    assert assets.resolve_model(None) == str(smollm2_dir)
    assert assets.resolve_model("minilm") == str(assets.minilm_path())
    assert assets.resolve_model(tmp_path) == str(tmp_path)
    assert assets.resolve_model("org/some-model") == "org/some-model"
    with pytest.raises(assets.AssetError, match="does not exist"):
        assets.resolve_model("./missing-model")


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LENGTHWISE_CACHE", str(tmp_path))
    assert assets.cache_dir() == tmp_path


@pytest.mark.slow
def test_smollm2_generates_text(smollm2_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    ids = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in text, text
    assert np.isfinite(out.numpy()).all()
