"""``evaluate``: one call that measures base model and adapters and writes the report."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from data_contracts import QARecord, SourceDocument, TaskType
from pipeline.chat import ChatFormatter
from pipeline.fingerprint import check_shards_tokenizer
from pipeline.io.readers import InputProblem, read_documents
from trainer.evaluation.probes import probe_grid
from trainer.evaluation.report import write_report
from trainer.evaluation.runner import ModelResult, load_model, perplexity, qa_accuracy, run_probes

log = logging.getLogger(__name__)


class EvalConfig(BaseModel):
    """What to evaluate and how much."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(None, description="base model folder/hub ID (default: packaged SmolLM2)")
    adapters: list[str] = Field(default_factory=list, description="adapter folders to compare with the base")
    include_base: bool = True
    haystack: list[str] = Field(description="documents for probe haystacks (files/folders, or chunk folders)")
    lengths: list[int] = Field(default_factory=lambda: [512, 1024])
    depths: list[float] = Field(default_factory=lambda: [0.0, 50.0, 100.0])
    tasks: list[str] = Field(default_factory=lambda: ["passkey", "needle_multikey"])
    per_cell: int = Field(1, ge=1)
    data: str | None = Field(None, description="held-out tokenized shards for perplexity by length")
    qa: str | None = Field(
        None, description="QA folder (or a build's qa/ root) for EM/F1; only held-out records when data is"
    )
    max_rows: int = Field(8, ge=1, description="rows per bucket for perplexity and QA")
    out: str = "out/eval"
    device: str | None = None
    batch_size: int = Field(4, ge=1)


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


def evaluate(cfg: EvalConfig) -> dict:
    """Evaluate base and adapters on the same probes/data; write the report; return its JSON content."""
    from pipeline.assets import resolve_model

    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    base = resolve_model(cfg.model)
    if cfg.data:
        check_shards_tokenizer(cfg.data, cfg.model, "eval")
    fmt = ChatFormatter(base)
    probes = probe_grid(
        _haystack_docs(cfg.haystack),
        fmt,
        cfg.lengths,
        cfg.depths,
        [TaskType(t) for t in cfg.tasks],
        cfg.per_cell,
    )
    table, heldout = _data(cfg.data)
    ppl_rows = _ppl_rows(table, cfg.max_rows) if table is not None else []
    # With held-out data, QA accuracy counts only the records behind those held-out rows.
    keep = set(table["qa_id"].to_pylist()) if heldout else None
    qa_records = _qa_records(cfg.qa, cfg.max_rows, keep) if cfg.qa else []
    candidates = ([("base", None)] if cfg.include_base else []) + [(Path(a).name, a) for a in cfg.adapters]
    results = []
    bar = tqdm(candidates, desc="evaluate", unit="model", disable=None)
    for name, adapter in bar:
        bar.set_postfix_str(name)
        log.info("evaluating %s", name)
        model = load_model(base, adapter, device, dtype)
        res = ModelResult(name=name, probes=run_probes(model, fmt, probes, cfg.batch_size))
        if ppl_rows:
            res.perplexity = perplexity(model, ppl_rows)
        if qa_records:
            res.qa = qa_accuracy(model, fmt, qa_records, cfg.batch_size)
        results.append(res)
        del model
    meta = {
        "base_model": base,
        "tasks": cfg.tasks,
        "depths": cfg.depths,
        "per_cell": cfg.per_cell,
        "lengths": cfg.lengths,
        "device": device,
        "data": cfg.data,
        "data_heldout": heldout,
        "qa": cfg.qa,
        "max_rows": cfg.max_rows,
    }
    write_report(results, Path(cfg.out), meta)
    import json

    return json.loads((Path(cfg.out) / "results.json").read_text())
