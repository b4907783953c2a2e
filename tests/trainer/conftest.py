"""A tiny random Llama with a BPE tokenizer trained on the fly, and real shards made with it."""

from __future__ import annotations

import pytest

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def make_tiny_model(folder, texts, hidden=64, layers=2, vocab=1024, max_pos=16384):
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    tk.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=vocab,
            special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    tok.chat_template = CHATML
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_pos,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    LlamaForCausalLM(cfg).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, sample_corpus):
    texts = [p.read_text()[:200_000] for p in sorted(sample_corpus.glob("*"))]
    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama"), texts)


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory, sample_corpus, tiny_model):
    """Teacher-free records at 200-1000 tokens, tokenized for the tiny model."""
    from pipeline.config import ChunkerConfig, ShardConfig, SynthConfig, TeacherConfig
    from pipeline.stages.chunk import chunk_corpus
    from pipeline.stages.shard import build_shards
    from pipeline.stages.synth import synthesize_corpus

    root = tmp_path_factory.mktemp("tiny-data")
    src = root / "docs"
    src.mkdir()
    for name in ("license-GPL-3.txt", "kjv-john.txt"):
        (src / name).write_text((sample_corpus / name).read_text())
    chunk_corpus([src], root / "chunks", ChunkerConfig(max_tokens=256, tokenizer=str(tiny_model)))
    synthesize_corpus(
        [root / "chunks"],
        root / "qa",
        SynthConfig(
            target_lengths=[400, 600, 800, 1000], teacher_free_per_length=3, student_tokenizer=str(tiny_model)
        ),
        TeacherConfig(kind="none"),
    )
    build_shards(
        [root / "qa"], root / "shards", ShardConfig(tokenizer=str(tiny_model), bucket_edges=[256, 512, 1024])
    )
    return root / "shards"
