"""Chat and instruction data as typed conversations: formats, bad rows, loss placement, cards."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_contracts import Conversation, Role
from pipeline.config import ChatSource, ShardConfig
from pipeline.io.chat_readers import read_conversations, to_conversation
from pipeline.io.readers import InputProblem
from pipeline.validate import load_manifest

ROWS = {
    "messages": {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
            {"role": "assistant", "content": "A2"},
        ]
    },
    "sharegpt": {
        "system": "Be brief.",
        "conversations": [
            {"from": "human", "value": "Q1"},
            {"from": "gpt", "value": "A1"},
            {"from": "human", "value": "Q2"},
            {"from": "gpt", "value": "A2"},
        ],
    },
    "alpaca": {
        "system": "Be brief.",
        "history": [["Q1", "A1"]],
        "instruction": "Q2",
        "input": "",
        "output": "A2",
    },
}


@pytest.mark.parametrize("fmt", sorted(ROWS))
def test_every_format_gives_the_same_conversation(fmt):
    conv = to_conversation(ROWS[fmt], "auto", "x.jsonl:1")
    assert conv.source_format == fmt
    assert [(t.role, t.content) for t in conv.turns] == [
        (Role.SYSTEM, "Be brief."),
        (Role.USER, "Q1"),
        (Role.ASSISTANT, "A1"),
        (Role.USER, "Q2"),
        (Role.ASSISTANT, "A2"),
    ]
    # Same turns, same id: a conversation is identified by what it says, not by its file format.
    assert conv.conversation_id == to_conversation(ROWS["messages"], "auto", "y").conversation_id


def test_longalign_rows_put_the_document_first():
    conv = to_conversation({"context": "DOC", "question": "Q?", "answer": "A."}, "auto", "f:1")
    assert conv.turns[0].content == "DOC\n\nQ?" and conv.turns[1].content == "A."


def test_bad_rows_are_listed_with_file_and_line(tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps(ROWS["messages"]),
                "{oops",
                json.dumps({"conversations": [{"from": "alien", "value": "x"}]}),
                "",
                json.dumps({"messages": [{"role": "user", "content": "no answer"}]}),
                json.dumps({"text": "unknown shape"}),
                json.dumps(ROWS["sharegpt"]),
            ]
        )
    )
    items = list(read_conversations(path))
    problems = {p.source: p.reason for p in items if isinstance(p, InputProblem)}
    assert sum(isinstance(i, Conversation) for i in items) == 2
    assert set(problems) == {f"{path}:2", f"{path}:3", f"{path}:5", f"{path}:6"}
    assert "invalid JSON" in problems[f"{path}:2"]
    assert "conversations[0].from" in problems[f"{path}:3"]
    assert "nothing to train on" in problems[f"{path}:5"]
    assert "unknown row format" in problems[f"{path}:6"]


def test_offline_hub_dataset_is_one_clear_problem(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    items = list(read_conversations("someone/some-chat-dataset"))
    assert len(items) == 1 and isinstance(items[0], InputProblem)
    assert items[0].source == "someone/some-chat-dataset" and "offline" in items[0].reason


def _trained_text(fmt, conv, assistant_turns="all"):
    ids, weights = fmt.encode_turns(conv.turns, assistant_turns)
    return fmt.hf.decode([i for i, w in zip(ids, weights, strict=True) if w > 0])


def test_loss_on_every_assistant_turn_or_the_last(formatter):
    conv = to_conversation(ROWS["messages"], "auto", "f:1")
    eos = formatter.eos_token
    assert _trained_text(formatter, conv) == f"A1{eos}A2{eos}"
    assert _trained_text(formatter, conv, "last") == f"A2{eos}"


def test_completion_format_and_template_override(formatter, tmp_path):
    from pipeline.chat import ChatFormatter

    conv = to_conversation(ROWS["alpaca"], "auto", "f:1")
    plain = ChatFormatter(completion=True)
    text, spans = plain.render_turns(conv.turns)
    eos = plain.eos_token
    assert text == f"Be brief.\n\nQ1\n\nA1{eos}\n\nQ2\n\nA2{eos}"
    assert [text[a:b] for a, b, _ in spans] == [f"A1{eos}", f"A2{eos}"]
    template = tmp_path / "t.jinja"
    template.write_text(
        "{% for m in messages %}{{ '[' + m['role'] + '] ' + m['content'] }}{% if m['role'] == 'assistant' %}"
        "{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '[assistant] ' }}{% endif %}"
    )
    custom = ChatFormatter(chat_template=template)
    text, spans = custom.render_turns(conv.turns, "last")
    assert text.startswith("[system] Be brief.\n[user] Q1\n")
    assert [text[a:b] for a, b, _ in spans] == [f"A2{custom.eos_token}"]


def test_one_length_split_gets_a_card_and_the_manifest_comes_last(tmp_path, monkeypatch):
    from pipeline.stages import card
    from pipeline.stages.shard import build_shards

    path = tmp_path / "same.jsonl"
    path.write_text("\n".join([json.dumps(ROWS["sharegpt"])] * 3 + ["not json"]) + "\n")
    cfg = ShardConfig(bucket_edges=[64, 128])
    src = [ChatSource(path=str(path))]

    def broken(*args, **kwargs):
        raise RuntimeError("card failed")

    monkeypatch.setattr(card, "write_card", broken)
    with pytest.raises(RuntimeError):
        build_shards([], tmp_path / "crashed", cfg, chat=src)
    assert not (tmp_path / "crashed" / "manifest.json").exists()  # not "done": a rerun redoes it
    monkeypatch.undo()
    result = build_shards([], tmp_path / "out", cfg, chat=src)
    lengths = {s.min_length for s in result.manifest.shards} | {s.max_length for s in result.manifest.shards}
    assert result.manifest.rows == 3 and len(lengths) == 1  # every example has the same length
    text = (tmp_path / "out" / "README.md").read_text()
    assert f"`{path}:4`" in text and "invalid JSON" in text
    assert (tmp_path / "out" / "length_histogram.png").stat().st_size > 0
    assert load_manifest(tmp_path / "out").skipped[0].source == f"{path}:4"
    assert np.isfinite([s.tokens for s in result.manifest.shards]).all()


def test_offline_hub_document_source_is_listed_and_the_build_goes_on(tmp_path, sample_corpus, monkeypatch):
    from pipeline.stages.build import Source, ingest, skipped_inputs

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sources = [Source(dataset="someone/some-corpus"), Source(path=str(sample_corpus / "nodejs-url.md"))]
    batches = ingest(sources, tmp_path, docs_per_batch=4)
    assert len(batches) == 1  # the local document is there
    (skipped,) = skipped_inputs(tmp_path)
    assert skipped["source"] == "someone/some-corpus" and "offline" in skipped["reason"]
