"""Tiny random models of several real families, each with its own tokenizer, built in code.

* ``llama3``: Llama-3.1-shaped config with ``rope_type: llama3`` (factor 8, original 8192, 131072
  positions), untied head, GQA; byte-level BPE with Llama-3 header/eot special tokens.
* ``qwen2``: Qwen2-style, q/k/v with bias, tied embeddings, rope_theta 1e6, sliding window off;
  byte-level BPE with ChatML tokens.
* ``mistral``: Mistral-style, ``sliding_window: None``, untied; Metaspace (SentencePiece-like) BPE
  with ``[INST]`` tokens.

``build_family(name, folder, texts, dtype)`` writes a safetensors model + tokenizer folder and
returns it; load it like any checkpoint. fp32 or bf16 weights.
"""

from __future__ import annotations

from pathlib import Path

FAMILIES = ("llama3", "qwen2", "mistral")

_TEMPLATES = {
    "llama3": (
        "{{ '<|begin_of_text|>' }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + "
        "'<|end_header_id|>\n\n' + m['content'] + '<|eot_id|>' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
    ),
    "qwen2": (
        "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n'}}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
    "mistral": (
        "{{ '<s>' }}{% for m in messages %}{% if m['role'] == 'assistant' %}{{ m['content'] + '</s>' }}"
        "{% else %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% endif %}{% endfor %}"
    ),
}
_SPECIALS = {
    "llama3": (["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
               dict(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token="<|end_of_text|>")),
    "qwen2": (["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
              dict(eos_token="<|im_end|>", pad_token="<|endoftext|>")),
    "mistral": (["<unk>", "<s>", "</s>", "[INST]", "[/INST]"],
                dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>")),
}
_VOCAB = {"llama3": 1024, "qwen2": 1100, "mistral": 900}


def build_tokenizer(family: str, texts: list[str]):
    """A BPE tokenizer trained on ``texts`` in the family's style, with its chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials, roles = _SPECIALS[family]
    if family == "mistral":
        tk = Tokenizer(models.BPE(unk_token="<unk>"))
        tk.pre_tokenizer = pre_tokenizers.Metaspace()
        tk.decoder = decoders.Metaspace()
        alphabet = []
    else:
        tk = Tokenizer(models.BPE())
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tk.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    tk.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=_VOCAB[family], special_tokens=specials, initial_alphabet=alphabet)
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, **roles)
    tok.chat_template = _TEMPLATES[family]
    return tok


def family_config(family: str, tok, hidden: int = 64, layers: int = 2):
    """The family's config at toy width (real structure: RoPE scaling, bias, GQA, tying)."""
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    common = dict(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    if family == "llama3":
        return LlamaConfig(
            **common,
            max_position_embeddings=131072,
            tie_word_embeddings=False,
            rope_parameters={
                "rope_type": "llama3",
                "rope_theta": 500000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
        )
    if family == "qwen2":
        return Qwen2Config(
            **common,
            max_position_embeddings=32768,
            tie_word_embeddings=True,
            use_sliding_window=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        )
    if family == "mistral":
        return MistralConfig(
            **common,
            max_position_embeddings=32768,
            tie_word_embeddings=False,
            sliding_window=None,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        )
    raise ValueError(f"unknown family {family!r}; one of {FAMILIES}")


def build_family(family: str, folder, texts: list[str], dtype: str = "float32", seed: int = 0) -> Path:
    """Write a tiny random ``family`` model (``float32`` or ``bfloat16`` weights) + tokenizer to ``folder``."""
    import torch
    from transformers import AutoModelForCausalLM

    tok = build_tokenizer(family, texts)
    cfg = family_config(family, tok)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg).to(getattr(torch, dtype))
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder
