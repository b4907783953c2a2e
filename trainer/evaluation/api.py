"""``evaluate``: one call that measures base model and adapters and writes the report."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from data_contracts import QARecord, SourceDocument
from pipeline.chat import ChatFormatter
from pipeline.fingerprint import check_shards_tokenizer
from pipeline.io.readers import InputProblem, read_documents
from trainer.evaluation import ruler
from trainer.evaluation.probes import Probe, probe_grid, qa_probes
from trainer.evaluation.progress import Progress
from trainer.evaluation.report import write_report
from trainer.evaluation.runner import ModelPool, ModelResult, perplexity, run_probes
from trainer.evaluation.stats import Accuracy

log = logging.getLogger(__name__)
DEFAULT_LENGTHS = [512, 1024]


class EvalConfig(BaseModel):
    """What to evaluate and how much (the ``eval:`` section of a run config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(None, description="base model folder/hub ID (default: packaged SmolLM2)")
    adapters: list[str] = Field(default_factory=list, description="adapter folders to compare with the base")
    include_base: bool = Field(
        True, description="also evaluate the base model (the reference for comparisons)"
    )
    haystack: list[str] = Field(description="documents for probe haystacks (files/folders, or chunk folders)")
    lengths: list[int] | None = Field(
        None,
        description="probe context lengths in tokens; default: every stage length the adapters were trained "
        "at (read from their training run folder), else 512 and 1024",
    )
    depths: list[float] = Field(
        default_factory=lambda: [0.0, 50.0, 100.0], description="evidence depths in percent of the context"
    )
    tasks: list[str] = Field(
        default_factory=lambda: ["passkey", "niah_multikey"],
        description="probe tasks: passkey, niah_multikey (needle_multikey), niah_multivalue, niah_multiquery, "
        "vt (variable_tracking), cwe (common-word extraction); QA probes come from `qa`",
    )
    per_cell: int = Field(4, ge=1, description="probes per (task, length, depth) cell")
    min_per_cell: int = Field(
        10, ge=1, description="the report warns about (task, length) results with fewer probes than this"
    )
    confidence: float = Field(0.95, gt=0, lt=1, description="level of the Wilson intervals around accuracies")
    answer_margin: int = Field(
        8, ge=0, description="generation stops this many tokens after the reference answer's length"
    )
    data: str | None = Field(None, description="held-out tokenized shards for perplexity by length")
    qa: str | None = Field(
        None,
        description="QA folder (or a build's qa/ root): RULER-style QA probes (string_match_part) plus EM/F1; "
        "only held-out records when `data` is a held-out split",
    )
    max_rows: int = Field(8, ge=1, description="rows per bucket for perplexity; QA records per length")
    out: str = Field("out/eval", description="report folder")
    device: str | None = Field(None, description="torch device (default: cuda when available, else cpu)")
    batch_size: int = Field(4, ge=1, description="probes per generation batch (batches hold equal lengths)")
    progress_every_s: float = Field(
        15.0, ge=0, description="seconds between progress log lines when not on a terminal"
    )
    lm_eval_tasks: list[str] = Field(
        default_factory=list,
        description="lm-evaluation-harness tasks to run on the base and each adapter (needs `pip install "
        "lm-eval`; skipped with a message when absent)",
    )
    lm_eval_limit: int | None = Field(None, ge=1, description="examples per lm-evaluation-harness task")

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str]) -> list[str]:
        return [ruler.task_name(t) for t in tasks]


def _haystack_docs(paths: list[str]) -> list[SourceDocument]:
    docs: list[SourceDocument] = []
    for p in paths:
        if (Path(p) / "manifest.json").exists():
            from pipeline.stages.load import iter_dataset

            docs.extend(iter_dataset(p, SourceDocument))
        else:
            docs.extend(d for d in read_documents([p]) if not isinstance(d, InputProblem))
    if not docs:
        raise ValueError(f"no haystack documents in {paths}")
    return docs


def run_folder(adapter: str | Path) -> Path:
    """The training run folder of an adapter (``RUN/adapter`` or ``RUN/stages/stage-i-L``)."""
    a = Path(adapter)
    return a.parent.parent if a.parent.name == "stages" else a.parent


def trained_lengths(adapters: list[str]) -> list[int]:
    """Every stage length the adapters' training runs used: ``summary.json``, else the stage folders."""
    lengths: set[int] = set()
    for a in adapters:
        run = run_folder(a)
        summary = run / "summary.json"
        if summary.exists():
            lengths.update(int(s["max_length"]) for s in json.loads(summary.read_text()).get("stages", []))
        for stage in (run / "stages").glob("stage-*-*"):
            tail = stage.name.rsplit("-", 1)[-1]
            if tail.isdigit():
                lengths.add(int(tail))
    return sorted(lengths)


def resolve_lengths(cfg: EvalConfig) -> list[int]:
    """``cfg.lengths``, else the trained stage lengths, else the defaults."""
    if cfg.lengths:
        return list(cfg.lengths)
    found = trained_lengths(cfg.adapters)
    if found:
        log.info("probing at the trained stage lengths %s", found)
    return found or list(DEFAULT_LENGTHS)


def _ppl_rows(table, max_rows: int) -> list[tuple[np.ndarray, np.ndarray, int]]:
    rows, seen = [], {}
    for i in range(table.num_rows):
        b = table["bucket"][i].as_py()
        if seen.get(b, 0) < max_rows:
            seen[b] = seen.get(b, 0) + 1
            rows.append(
                (table["input_ids"][i].values.to_numpy(), table["loss_weights"][i].values.to_numpy(), b)
            )
    return rows


def _data(data: str | None):
    """The tokenized rows of ``data`` (memory-mapped, verified) and whether they are a held-out split."""
    if not data:
        return None, False
    from data_contracts.reader import open_buckets
    from pipeline.stages.split import build_split
    from pipeline.validate import load_manifest

    return open_buckets(data).data.table, build_split(load_manifest(data)) == "heldout"


def _qa_records(qa: str, max_rows: int, keep: set[str] | None) -> list[QARecord]:
    """Up to ``max_rows`` QA records per target length, only those in ``keep`` when given."""
    from pipeline.stages.load import iter_datasets

    per: dict[int, int] = {}
    records = []
    for rec in iter_datasets(qa, QARecord):
        if (keep is None or rec.qa_id in keep) and per.get(rec.target_tokens, 0) < max_rows:
            per[rec.target_tokens] = per.get(rec.target_tokens, 0) + 1
            records.append(rec)
    return records


def build_probes(
    cfg: EvalConfig, fmt: ChatFormatter, lengths: list[int], keep: set[str] | None
) -> list[Probe]:
    """The retrieval grid plus QA probes from ``cfg.qa``."""
    probes = probe_grid(_haystack_docs(cfg.haystack), fmt, lengths, cfg.depths, cfg.tasks, cfg.per_cell)
    if cfg.qa:
        probes += qa_probes(_qa_records(cfg.qa, cfg.max_rows, keep), cfg.depths)
    return probes


def evaluate(cfg: EvalConfig) -> dict:
    """Evaluate base and adapters on the same probes/data; write the report; return its JSON content.

    The base model is loaded once; each adapter is swapped onto it (``ModelPool``).
    """
    from pipeline.assets import resolve_model

    started = time.perf_counter()
    cpu0 = time.process_time()
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    base = resolve_model(cfg.model)
    if cfg.data:
        check_shards_tokenizer(cfg.data, cfg.model, "eval")
    fmt = ChatFormatter(base)
    lengths = resolve_lengths(cfg)
    table, heldout = _data(cfg.data)
    ppl_rows = _ppl_rows(table, cfg.max_rows) if table is not None else []
    # With held-out data, QA probes use only the records behind those held-out rows.
    keep = set(table["qa_id"].to_pylist()) if heldout else None
    probes = build_probes(cfg, fmt, lengths, keep)
    candidates = ([("base", None)] if cfg.include_base else []) + [(Path(a).name, a) for a in cfg.adapters]
    progress = Progress(len(probes) * len(candidates), cfg.progress_every_s)
    pool = ModelPool(str(base), device, dtype)
    results = []
    for name, adapter in candidates:
        progress.stage(name)
        with pool.activate(adapter) as model:
            res = ModelResult(name=name, confidence=cfg.confidence)
            res.probes = run_probes(model, fmt, probes, cfg.batch_size, cfg.answer_margin, progress)
            if ppl_rows:
                res.perplexity = perplexity(model, ppl_rows)
        results.append(res)
    progress.close()
    del pool
    meta = {
        "base_model": str(base),
        "tasks": cfg.tasks + (["qa"] if cfg.qa else []),
        "depths": cfg.depths,
        "per_cell": cfg.per_cell,
        "min_per_cell": cfg.min_per_cell,
        "confidence": cfg.confidence,
        "lengths": lengths,
        "device": device,
        "data": cfg.data,
        "data_heldout": heldout,
        "qa": cfg.qa,
        "max_rows": cfg.max_rows,
        "n_probes": len(probes),
        "wall_s": round(time.perf_counter() - started, 1),
        "cpu_s": round(time.process_time() - cpu0, 1),
    }
    if cfg.lm_eval_tasks:
        from trainer.evaluation.harness import run_lm_eval

        meta["lm_eval"] = run_lm_eval(str(base), candidates, cfg, device)
    write_report(results, Path(cfg.out), meta)
    return json.loads((Path(cfg.out) / "results.json").read_text())


def gate_accuracy(model, fmt: ChatFormatter, haystack: list[str], length: int, per_cell: int = 1) -> Accuracy:
    """Passkey accuracy at ``length`` (depths 10/50/90%): the trainer's stage gate.

    Same probes, generation and scoring as ``evaluate``.
    """
    probes = probe_grid(_haystack_docs(haystack), fmt, [length], [10.0, 50.0, 90.0], ["passkey"], per_cell)
    rows = run_probes(model, fmt, probes)
    return Accuracy(sum(r["correct"] for r in rows), len(rows))
