"""QA, document-level, long-document LM and replay records in one mix (issue 17 item 4).

One small build on bundled sample documents: per-chunk and teacher-free QA plus document-level
tasks from the adversarial test teacher (a real OpenAI-compatible HTTP server, all replies good),
LM windows of the documents at every bucket length, and short replay conversations.
"""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from data_contracts import LMRecord, SourceDocument
from data_contracts.io import read_records, read_table
from pipeline.chat import ChatFormatter
from pipeline.chunking import SlidingWindowChunker
from pipeline.config import ChunkerConfig, LMConfig, ReplayConfig, ShardConfig, SynthConfig, TeacherConfig
from pipeline.stages import build as stages
from pipeline.stages.load import iter_dataset
from pipeline.stages.mix import QA_KINDS
from pipeline.stages.shard import inspect_lines
from pipeline.validate import load_manifest, validate_path
from tests.conftest import REPO
from tests.synthesis.adversarial_server import AdversarialTeacher

EDGES = [512, 1024, 2048]
LM_SHARE, REPLAY_SHARE = 0.3, 0.1
DOCS = ("license-Apache-2.0.txt", "license-MPL-2.0.txt")


def _replay_file(path, n=200):
    """Short instruction conversations (messages format), different from each other."""
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i + 7}? Answer with the number only."},
                {"role": "assistant", "content": f"{2 * i + 7}. Adding {i} and {i + 7} gives {2 * i + 7}."},
            ]
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, sample_corpus):
    root = tmp_path_factory.mktemp("mix")
    src = root / "src"
    src.mkdir()
    for name in DOCS:
        shutil.copy(sample_corpus / name, src / name)
    out = root / "build"
    synth = SynthConfig(
        tasks=["general"],
        questions_per_doc=1,
        target_lengths=[1024, 2048],
        evidence_mode="teacher",
        teacher_free_per_length=1,
        teacher_free_tasks=["passkey", "kv_retrieval"],
        dedup_embedder=None,
        doc_tasks=["doc_summary", "multi_segment"],
        doc_tasks_per_doc=1,
        closed_book_check=False,
        verify_answers=False,
    )
    lm = LMConfig(share=LM_SHARE)
    replay = ReplayConfig(path=str(_replay_file(root / "replay.jsonl")), share=REPLAY_SHARE)
    shard = ShardConfig(bucket_edges=EDGES)
    batches = stages.ingest([stages.Source(path=str(src))], out, docs_per_batch=8)
    chunked = [stages.chunk_batch(b, out, ChunkerConfig(max_tokens=384)) for b in batches]
    with AdversarialTeacher(mix={"good": 1}) as srv:
        teacher = TeacherConfig(kind="openai", base_url=srv.url, model="adv", concurrency=8, timeout_s=10)
        qa = [stages.synthesize_batch(c, out, synth, teacher, str(root / "cache.sqlite")) for c in chunked]
    lm_dirs = [stages.lm_batch(b, out, lm, EDGES, None) for b in batches]
    shards = stages.shard_all(qa, out, shard, lm_dirs=lm_dirs, lm=lm, replay=replay)
    return {
        "out": out,
        "shards": shards,
        "args": (qa, out, shard),
        "mix": {"lm_dirs": lm_dirs, "lm": lm, "replay": replay},
        "docs": {d.doc_id: d for b in batches for d in read_records(b, SourceDocument)},
    }


def _mix(manifest):
    return {(b.upper, m.kind): m for b in manifest.buckets for m in b.mix}


def _tokens(mix, bucket, kinds):
    return sum(m.tokens for (b, k), m in mix.items() if b == bucket and k in kinds)


def test_manifest_reports_one_mix_of_qa_doc_tasks_lm_and_replay(mixed):
    m = validate_path(mixed["shards"]).manifest
    mix = _mix(m)
    assert {"qa", "doc_task", "lm", "replay"} <= {k for _, k in mix}, mix
    for b in m.buckets:  # the mix rows add up to the bucket
        assert sum(x.rows for x in b.mix) == b.rows and sum(x.tokens for x in b.mix) == b.tokens
    assert json.loads(m.config_json)["mix"]["lm"]["share"] == LM_SHARE
    card = open(f"{mixed['shards']}/README.md").read()
    assert "## Data mix" in card and "| lm |" in card and "| replay |" in card
    assert any("lm " in line and "qa " in line for line in inspect_lines(mixed["shards"]))


def test_lm_share_per_bucket_is_the_requested_token_share(mixed):
    m = load_manifest(mixed["shards"])
    mix = _mix(m)
    checked = 0
    for edge in EDGES:
        qa, lm = _tokens(mix, edge, QA_KINDS), _tokens(mix, edge, ["lm"])
        if not qa:
            assert not lm  # nothing to mix with: no LM either
            continue
        target = LM_SHARE / (1 - LM_SHARE) * qa
        # Records are whole: the pick stops within half a record (<= edge tokens) of the target.
        assert abs(lm - target) <= edge / 2, (edge, qa, lm, target)
        checked += 1
    assert checked >= 2
    qa_all = sum(_tokens(mix, e, QA_KINDS) for e in EDGES)
    lm_all = sum(_tokens(mix, e, ["lm"]) for e in EDGES)
    assert abs(lm_all / (qa_all + lm_all) - LM_SHARE) < 0.05
    replay = sum(_tokens(mix, e, ["replay"]) for e in EDGES)
    assert REPLAY_SHARE - 0.02 < replay / m.tokens <= REPLAY_SHARE


def test_lm_windows_have_exact_offsets_and_carry_loss_on_every_token(mixed, smol_tokenizer):
    docs = mixed["docs"]
    records = {r.lm_id: r for d in mixed["mix"]["lm_dirs"] for r in iter_dataset(d, LMRecord)}
    assert {r.window for r in records.values()} >= {512, 1024}  # windows at several stage lengths
    for r in records.values():
        assert docs[r.doc_id].text[r.char_start : r.char_end] == r.text
        assert smol_tokenizer.count(r.text) == r.token_count
        assert r.window is None or r.length <= r.window
    # The windower shares token offsets between lengths: its windows are the sliding chunker's.
    doc = max(docs.values(), key=lambda d: d.n_chars)
    plain = SlidingWindowChunker(tokenizer=smol_tokenizer, max_tokens=1023, stride_tokens=1023)
    ours = sorted(
        (r.char_start, r.char_end) for r in records.values() if r.doc_id == doc.doc_id and r.window == 1024
    )
    assert ours == [(c.char_start, c.char_end) for c in plain.chunk_document(doc) if c.token_count >= 64]
    fmt = ChatFormatter()
    seen = 0
    for s in load_manifest(mixed["shards"]).shards:
        if s.bucket is None:
            continue
        t = read_table(f"{mixed['shards']}/{s.path}").to_pylist()
        for row in t:
            weights = np.asarray(row["loss_weights"])
            assert len(weights) == len(row["input_ids"]) == row["length"]  # unpadded rows
            if row["task_type"] != "lm":
                assert 0 < (weights > 0).sum() < row["length"]  # QA/replay: loss on answers only
                continue
            rec = records[row["qa_id"]]
            ids = smol_tokenizer.encode(rec.text).ids + ([fmt.hf.eos_token_id] if rec.ends_document else [])
            assert row["input_ids"] == ids and row["doc_ids"] == [rec.doc_id]
            assert (weights == 1).all() and row["n_answer_tokens"] == row["length"]
            seen += 1
    assert seen >= 3


def test_rerun_writes_identical_shards(mixed):
    first = [(s.path, s.sha256) for s in load_manifest(mixed["shards"]).shards]
    shutil.rmtree(mixed["shards"])
    again = stages.shard_all(*mixed["args"], **mixed["mix"])
    assert [(s.path, s.sha256) for s in load_manifest(again).shards] == first


def test_a_source_too_small_for_its_share_is_reported_not_padded(mixed, tmp_path, caplog):
    qa, _, shard = mixed["args"]
    greedy = ReplayConfig(path=mixed["mix"]["replay"].path, share=0.6)
    lm = LMConfig(share=0.95)  # two short licenses cannot give 95% of the tokens at every length
    with caplog.at_level(logging.WARNING, logger="pipeline.stages.mix"):
        out = stages.shard_all(qa, tmp_path, shard, lm_dirs=mixed["mix"]["lm_dirs"], lm=lm, replay=greedy)
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "replay share" in warned and "< requested 60%" in warned
    assert "LM share" in warned and "lower lm.share" in warned
    m = load_manifest(out)
    rows = len(open(greedy.path).readlines())  # every replay row is used, and nothing more
    assert sum(x.rows for b in m.buckets for x in b.mix if x.kind == "replay") == rows
    card = open(f"{out}/README.md").read()
    assert "**warning**: replay share" in card, card


@pytest.mark.parametrize(
    ("patch", "where"),
    [
        ({"lm": {"share": 0}}, "lm.share"),
        ({"lm": {"lengths": [512, 4096]}}, "largest bucket edge"),
        ({"lm": {"lengths": [1024, 512]}}, "lm.lengths"),
        ({"replay": {"share": 0.1}}, "give exactly one of path or dataset"),
    ],
)
def test_bad_mix_config_is_a_clear_error(tmp_path, patch, where):
    import yaml

    from flows.config import load_build_config
    from pipeline.errors import ConfigError

    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump({"sources": [{"path": "x"}], "shard": {"bucket_edges": EDGES}, **patch}))
    with pytest.raises(ConfigError) as err:
        load_build_config(path)
    assert where in str(err.value), err.value


def test_pick_is_seeded_closest_to_the_target_and_flags_a_short_source():
    from pipeline.stages.mix import LMCandidate, pick_lm

    cands = [LMCandidate(f"lm-{i}", f"doc-{i % 3}", 400 + i) for i in range(20)]  # all in bucket 512
    pick = pick_lm(cands, {512: 7000}, [512, 1024], share=0.3, seed=0)
    got = sum(c.length for c in cands if c.lm_id in pick.picked)
    assert abs(got - 0.3 / 0.7 * 7000) <= 512 / 2 and not pick.exhausted
    assert pick_lm(reversed(cands), {512: 7000}, [512, 1024], 0.3, 0).picked == pick.picked  # order-free
    assert pick_lm(cands, {512: 7000}, [512, 1024], 0.3, 1).picked != pick.picked  # the seed decides
    short = pick_lm(cands[:2], {512: 7000}, [512, 1024], share=0.3, seed=0)
    assert short.picked == {"lm-0", "lm-1"} and short.exhausted == {512}
    assert pick_lm(cands, {}, [512, 1024], share=1.0, seed=0).picked == {c.lm_id for c in cands}


def test_mix_config_in_configs_loads():
    from flows.config import load_build_config

    cfg = load_build_config(REPO / "configs" / "mix.yaml")
    assert cfg.lm and cfg.lm.share == 0.3 and cfg.synth.doc_tasks and cfg.lm_lengths() == EDGES


def test_heldout_split_stays_qa_only_and_its_documents_give_no_lm_records(mixed, tmp_path):
    from pipeline.stages.split import key_is_heldout

    qa, _, shard = mixed["args"]
    split = shard.model_copy(update={"heldout_fraction": 0.5, "heldout_by": "document"})
    out = stages.shard_all(qa, tmp_path, split, **mixed["mix"])
    held = load_manifest(f"{out}/heldout")
    assert held.rows and {m.kind for b in held.buckets for m in b.mix} <= {"qa", "doc_task"}
    lm_docs = set()
    for s in load_manifest(out).shards:
        if s.bucket is not None:
            t = read_table(f"{out}/{s.path}").select(["task_type", "doc_ids"]).to_pylist()
            lm_docs |= {d for r in t if r["task_type"] == "lm" for d in r["doc_ids"]}
    assert lm_docs and not any(key_is_heldout(d, 0.5) for d in lm_docs)


def test_a_plain_text_conversation_is_never_rendered_with_a_chat_template(smol_tokenizer):
    from data_contracts import Conversation, Role, Turn

    text = "Chapter 1. It was a long document, and every token of it carried the loss."
    conv = Conversation(
        conversation_id="c-1",
        turns=[Turn(role=Role.TEXT, content=text, weight=1.0)],
        source="x",
        source_format="text",
    )
    fmt = ChatFormatter(system_prompt="Be brief.")  # chat format with a system prompt: neither applies
    ids, weights = fmt.encode_turns(conv.turns)
    assert ids.tolist() == smol_tokenizer.encode(text).ids + [fmt.hf.eos_token_id]
    assert (weights == 1).all()


@pytest.mark.parametrize("family", ["llama3", "qwen2"])
def test_lm_records_follow_a_non_smollm2_tokenizer(family, sample_corpus, tmp_path):
    """Windows are counted, cut and rendered with the student's own tokenizer (not SmolLM2's)."""
    from data_contracts import Role, Turn
    from pipeline.stages.lm import LMWindower
    from tests.model_families import build_tokenizer

    texts = [p.read_text()[:50_000] for p in sorted(sample_corpus.glob("*"))[:4]]
    tok = build_tokenizer(family, texts)
    tok.save_pretrained(tmp_path / family)
    text = (sample_corpus / "license-MPL-2.0.txt").read_text()[:6000]
    doc = SourceDocument.from_text(text, "mpl.txt", "txt")
    windower = LMWindower([128, 512], LMConfig(share=0.3), str(tmp_path / family))
    recs = windower.records(doc)
    assert recs and {r.window for r in recs} == {128, 512}
    fmt = ChatFormatter(str(tmp_path / family))
    for r in recs:
        assert text[r.char_start : r.char_end] == r.text
        ids = tok(r.text, add_special_tokens=False)["input_ids"]
        assert len(ids) == r.token_count <= r.window - 1
        encoded, weights = fmt.encode_turns([Turn(role=Role.TEXT, content=r.text, weight=1.0)])
        assert encoded.tolist() == ids + [tok.eos_token_id] and (weights == 1).all()
    assert any(r.ends_document for r in recs)
