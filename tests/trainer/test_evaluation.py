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
    probes = probe_grid(docs, fmt, [512, 1024], [0, 50, 100], ["passkey"], per_cell=1)
    assert [(p.length, p.depth) for p in probes] == [(L, d) for L in (512, 1024) for d in (0, 50, 100)]
    for p in probes:
        assert fmt.count_example(p.context, p.question, p.answer) <= p.length and p.refs[0] in p.context
        at = p.context.index(p.refs[0])
        assert abs(100 * fmt.count(p.context[:at]) / fmt.count(p.context) - p.depth) < 25
    again = probe_grid(docs, fmt, [512], [50], [TaskType.PASSKEY])
    assert again[0].qa_id == probes[1].qa_id


def _canned(name: str, right: set[int], n: int) -> ModelResult:
    r = ModelResult(name)
    r.probes = [
        {
            "task": "passkey",
            "length": L,
            "depth": d,
            "expected": "1",
            "reply": "1",
            "correct": L in right or (i == 0 and d == 0.0),
            "ruler_score": float(L in right),
        }
        for L in (512, 1024)
        for d in (0.0, 50.0, 100.0)
        for i in range(n)
    ]
    r.perplexity = {512: {"answer_ppl": 5.0, "context_ppl": 9.0, "answer_tokens": 10}}
    return r


def test_report_from_canned_results(tmp_path):
    results = [_canned("base", {512}, 10), _canned("adapter", {512, 1024}, 10)]
    meta = {"tasks": ["passkey"], "depths": [0, 50, 100], "per_cell": 10, "min_per_cell": 40}
    text = write_report(results, tmp_path, meta).read_text()
    # n and the Wilson interval next to every accuracy; base at 1024 is 1/30 correct.
    assert "| base | 1.00 [0.89, 1.00] n=30 | 0.03 [0.01, 0.17] n=30 |" in text
    assert (
        "| passkey | 1024 | adapter | better |" in text
        and "| passkey | 512 | adapter | not different |" in text
    )
    assert "fewer than 40 probes" in text and "passkey @ 512: n=30" in text
    for png in ("metric_vs_length.png", "heatmap_passkey.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    data = json.loads((tmp_path / "results.json").read_text())
    by_len = data["models"][1]["probe_accuracy_by_length"]
    assert by_len["1024"]["accuracy"] == 1.0 and by_len["1024"]["n"] == 30 and by_len["1024"]["lo"] > 0.88
    cell = next(a for a in data["models"][0]["accuracy"] if a["length"] == 1024 and a["depth"] == 0.0)
    assert (cell["k"], cell["n"]) == (1, 10)
    rul = json.loads((tmp_path / "ruler.json").read_text())
    assert rul["models"]["base"]["1024"]["tasks"]["passkey"] == {"score": 0.0, "nulls": "0/30", "n": 30}
    assert rul["models"]["adapter"]["1024"]["average"] == 100.0


def test_batched_generation_equals_one_at_a_time(tiny_model, sample_corpus):
    import torch

    from trainer.evaluation.runner import ModelPool, run_probes

    fmt = ChatFormatter(tiny_model)
    docs = list(read_documents([sample_corpus / "kjv-john.txt"]))
    probes = probe_grid(docs, fmt, [400, 520], [0, 100], ["passkey"], per_cell=1)
    model = ModelPool(str(tiny_model)).base
    torch.manual_seed(0)
    with torch.no_grad():  # larger random weights: greedy replies then depend on the prompt
        for w in model.parameters():
            if w.dim() == 2:
                w.normal_(0, 0.3)
    one = run_probes(model, fmt, probes, batch_size=1)
    batched = run_probes(model, fmt, probes, batch_size=4)
    assert [r["reply"] for r in batched] == [r["reply"] for r in one]
    assert len({r["reply"] for r in one}) > 1  # real, varied generations
    # Generation stops at the reference answer's length + margin: no margin gives prefixes.
    short = run_probes(model, fmt, probes, batch_size=4, margin=0)
    assert all(b["reply"].startswith(s["reply"].rstrip()) for s, b in zip(short, batched, strict=True))
    assert sum(len(s["reply"]) < len(b["reply"]) for s, b in zip(short, batched, strict=True)) > 0


def _random_adapter(tiny_model, path, seed, rope=None):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from trainer.config import RopeConfig
    from trainer.model import apply_rope, save_adapter

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    params = apply_rope(base, RopeConfig(type="linear", factor=rope)) if rope else None
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    save_adapter(get_peft_model(base, lora), path, params)
    return path


def test_adapter_swap_equals_fresh_load(tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from trainer.evaluation.runner import ModelPool
    from trainer.model import load_adapter

    adapters = [
        _random_adapter(tiny_model, tmp_path / "a1", 1),
        _random_adapter(tiny_model, tmp_path / "a2", 2, 4.0),
    ]
    x = torch.randint(5, 1000, (1, 300))

    def logits(model):
        with torch.inference_mode():
            return model(input_ids=x).logits

    fresh = [logits(AutoModelForCausalLM.from_pretrained(tiny_model).eval())]
    fresh += [logits(load_adapter(str(tiny_model), a)) for a in adapters]
    pool = ModelPool(str(tiny_model))
    order = [None, adapters[0], adapters[1], None, adapters[0]]
    expect = [fresh[0], fresh[1], fresh[2], fresh[0], fresh[1]]
    for adapter, want in zip(order, expect, strict=True):
        with pool.activate(adapter) as model:
            torch.testing.assert_close(logits(model), want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(fresh[0], fresh[1], atol=1e-3) and not torch.allclose(
        fresh[1], fresh[2], atol=1e-3
    )
    assert len(pool.peft.peft_config) == 1  # swapped, not accumulated


def test_probe_lengths_default_to_the_trained_stages(tmp_path):
    from trainer.evaluation.api import EvalConfig, resolve_lengths, trained_lengths

    run = tmp_path / "run"
    for name in ("stage-0-512", "stage-1-1024"):
        (run / "stages" / name).mkdir(parents=True)
    (run / "adapter").mkdir()
    assert trained_lengths([str(run / "adapter")]) == [512, 1024]
    (run / "summary.json").write_text(json.dumps({"stages": [{"max_length": L} for L in (512, 1024, 2048)]}))
    cfg = EvalConfig(haystack=["x"], adapters=[str(run / "stages" / "stage-0-512")])
    assert resolve_lengths(cfg) == [512, 1024, 2048]
    assert resolve_lengths(cfg.model_copy(update={"lengths": [4096]})) == [4096]
    assert resolve_lengths(EvalConfig(haystack=["x"])) == [512, 1024]
    with pytest.raises(ValueError, match="unknown probe task"):
        EvalConfig(haystack=["x"], tasks=["passkey", "nope"])


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
            depths=[0, 100],
            tasks=["passkey"],
            per_cell=1,
            data=str(held),
            qa=str(tiny_shards.parent / "qa"),
            max_rows=2,
            out=str(tmp_path / "e"),
        )
    )
    assert [m["name"] for m in result["models"]] == ["base", "adapter"]
    assert result["meta"]["lengths"] == [1024]  # the trained stage, read from the run folder
    for m in result["models"]:
        assert sum(p["task"] == "passkey" for p in m["probes"]) == 2
    assert result["models"][0]["perplexity"] and result["models"][1]["qa"]
    assert (tmp_path / "e" / "ruler.json").exists() and (tmp_path / "e" / "heatmap_qa.png").exists()
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
    assert set(acc) == {"512", "1024"} and acc["512"]["n"] == 6
    assert (tmp_path / "heatmap_passkey.png").exists() and (tmp_path / "metric_vs_length.png").exists()


def test_stage_gate_uses_the_evaluation_probes(tiny_model, tiny_shards, sample_corpus, tmp_path):
    from trainer.config import StageConfig, TrainConfig
    from trainer.recipe import StageGateFailed, train

    cfg = TrainConfig(
        model=str(tiny_model),
        data=str(tiny_shards),
        output_dir=str(tmp_path / "t"),
        stages=[StageConfig(max_length=1024, steps=1, gate_min_accuracy=1.0)],
        tokens_per_step=1024,
        precision="fp32",
        isolation_check=False,
        gate_haystack=[str(sample_corpus / "kjv-john.txt")],
    )
    with pytest.raises(
        StageGateFailed, match=r"passkey accuracy 0\.00 \[0\.00, 0\.\d\d\] n=3 < required 1\.00"
    ):
        train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    gate = next(r for r in rows if "gate_accuracy" in r)
    assert gate["gate_probes"] == 3 and gate["gate_lo"] == 0.0 and 0.5 < gate["gate_hi"] < 0.6


def test_export_card_reads_the_report_with_intervals(tmp_path):
    from types import SimpleNamespace

    from trainer.card import _eval_lines

    run = tmp_path / "train"
    (run / "adapter").mkdir(parents=True)
    write_report([_canned("base", {512}, 3), _canned("adapter", {512, 1024}, 3)], tmp_path / "eval", {})
    lines = _eval_lines(SimpleNamespace(run_dir=run, adapter=run / "adapter", stage=None))
    assert any(
        line.startswith("| adapter | 512: 1.00 [0.70, 1.00] n=9, 1024: 1.00 [0.70, 1.00] n=9")
        for line in lines
    )
