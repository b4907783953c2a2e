"""Evaluation: probe grid and scoring (canned replies), the full report on the tiny model, SmolLM2 (slow)."""

from __future__ import annotations

import json

import pytest

from data_contracts import TaskType
from pipeline.chat import ChatFormatter
from pipeline.io.readers import read_documents
from trainer.evaluation.probes import probe_grid, score
from trainer.evaluation.report import write_report
from trainer.evaluation.runner import ModelResult


def test_scoring_is_exact():
    assert score("31337", "The pass key is 31337.")
    assert not score("31337", "The pass key is 313370.")
    assert not score("31337", "I don't know")


def test_probe_grid_cells_depths_and_held_out_seeds(sample_corpus):
    fmt = ChatFormatter()
    docs = list(read_documents([sample_corpus]))
    probes = probe_grid(docs, fmt, [512, 1024], [0, 50, 100], [TaskType.PASSKEY], per_cell=1)
    assert [(p.length, p.depth) for p in probes] == [(L, d) for L in (512, 1024) for d in (0, 50, 100)]
    for p in probes:
        assert p.record.n_tokens <= p.length and p.expected in p.record.context
        assert abs(p.record.evidence_depth_pct - p.depth) < 25
    again = probe_grid(docs, fmt, [512], [50], [TaskType.PASSKEY])
    assert again[0].record.qa_id == probes[1].record.qa_id


def test_report_from_canned_results(tmp_path):
    results = []
    for name, right in (("base", {512}), ("adapter", {512, 1024})):
        r = ModelResult(name)
        r.probes = [
            {"task": "passkey", "length": L, "depth": d, "expected": "1", "reply": "1", "correct": L in right}
            for L in (512, 1024)
            for d in (0.0, 50.0, 100.0)
        ]
        r.perplexity = {512: {"answer_ppl": 5.0, "context_ppl": 9.0, "answer_tokens": 10}}
        results.append(r)
    path = write_report(results, tmp_path, {"tasks": ["passkey"], "depths": [0, 50, 100], "per_cell": 1})
    text = path.read_text()
    assert "| base | 1.00 | 0.00 | 0.50 |" in text and "| adapter | 1.00 | 1.00 | 1.00 |" in text
    for png in ("metric_vs_length.png", "heatmap_0.png", "heatmap_1.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["models"][1]["probe_accuracy_by_length"] == {"512": 1.0, "1024": 1.0}


def test_evaluate_tiny_model_with_adapter_end_to_end(tiny_model, tiny_shards, sample_corpus, tmp_path):
    from data_contracts.reader import open_buckets
    from pipeline.config import ShardConfig
    from pipeline.stages.shard import build_shards
    from trainer.config import StageConfig, TrainConfig
    from trainer.evaluation.api import EvalConfig, evaluate
    from trainer.recipe import train

    train(
        TrainConfig(
            model=str(tiny_model),
            data=str(tiny_shards),
            output_dir=str(tmp_path / "t"),
            stages=[StageConfig(max_length=1024, steps=1)],
            tokens_per_step=1024,
            precision="fp32",
        )
    )
    # A held-out split of the same QA records: perplexity and EM/F1 only on rows never trained on.
    split = ShardConfig(
        tokenizer=str(tiny_model), bucket_edges=[256, 512, 1024], heldout_fraction=0.3, heldout_by="record"
    )
    held = build_shards([tiny_shards.parent / "qa"], tmp_path / "split", split).heldout.out_dir
    result = evaluate(
        EvalConfig(
            model=str(tiny_model),
            adapters=[str(tmp_path / "t" / "adapter")],
            haystack=[str(sample_corpus)],
            lengths=[512, 800],
            depths=[0, 100],
            tasks=["passkey"],
            data=str(held),
            qa=str(tiny_shards.parent / "qa"),
            max_rows=2,
            out=str(tmp_path / "e"),
        )
    )
    assert [m["name"] for m in result["models"]] == ["base", "adapter"]
    assert all(len(m["probes"]) == 4 for m in result["models"])
    assert result["models"][0]["perplexity"] and result["models"][1]["qa"]
    n_held = len(set(open_buckets(held)["qa_id"]))
    assert 0 < sum(v["n"] for v in result["models"][1]["qa"].values()) <= n_held
    report = (tmp_path / "e" / "report.md").read_text()
    assert "These rows are held out" in report and "in the held-out split" in report


@pytest.mark.slow
def test_smollm2_base_report_at_512_and_1k(sample_corpus, tmp_path):
    from trainer.evaluation.api import EvalConfig, evaluate

    result = evaluate(
        EvalConfig(
            haystack=[str(sample_corpus)],
            lengths=[512, 1024],
            depths=[0, 50, 100],
            tasks=["passkey"],
            per_cell=2,
            out=str(tmp_path),
        )
    )
    acc = result["models"][0]["probe_accuracy_by_length"]
    assert set(acc) == {"512", "1024"}
    assert (tmp_path / "heatmap_0.png").exists() and (tmp_path / "metric_vs_length.png").exists()
