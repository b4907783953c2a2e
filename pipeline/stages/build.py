"""Batch-level stage functions for orchestrated builds: each takes and returns folder paths.

Every function is idempotent: an output folder counts as done when its ``manifest.json`` exists and
records the same configuration and input hashes, so a rerun (or a rerun after SIGKILL) redoes only
unfinished batches and produces the same bytes an uninterrupted build would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from data_contracts import RejectedRecord, SkippedInput, SourceDocument, content_hash
from data_contracts.io import TMP_SUFFIX, write_records
from pipeline.config import (
    ChatSource,
    ChunkerConfig,
    LMConfig,
    ReplayConfig,
    ShardConfig,
    SynthConfig,
    TeacherConfig,
)
from pipeline.errors import InputError
from pipeline.io.chat_readers import dataset_open_error
from pipeline.io.readers import InputProblem, read_documents, read_hf_dataset
from pipeline.stages.chunk import chunk_corpus, reject_for
from pipeline.stages.shard import ShardResult, build_shards
from pipeline.stages.split import HELDOUT_DIR
from pipeline.stages.synth import synthesize_corpus
from pipeline.validate import load_manifest


class Source(BaseModel):
    """Where inputs come from: files/folders (txt, md, rst, jsonl, parquet) or a ``datasets`` dataset.

    ``kind: documents`` (default) are chunked and synthesized into QA; ``kind: chat`` are chat or
    instruction records (messages, ShareGPT, Alpaca, LongAlign) that go straight to the shards.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["documents", "chat"] = "documents"
    path: str | None = None
    dataset: str | None = Field(
        None, description="a `datasets` hub name (needs the network) or a save_to_disk folder"
    )
    split: str = "train"
    text_field: str = Field("text", description="documents: the text column of JSONL/Parquet/datasets rows")
    max_docs: int | None = Field(None, ge=1, description="at most this many documents (or chat rows)")
    format: Literal["auto", "messages", "sharegpt", "alpaca", "longalign"] = Field(
        "auto", description="chat: row format; auto picks it from each row's keys"
    )
    system_prompt: str | None = Field(None, description="chat: system turn for rows without their own")

    def chat_source(self) -> ChatSource:
        """The chat import this source describes (``kind: chat``)."""
        return ChatSource(
            path=self.path,
            dataset=self.dataset,
            split=self.split,
            format=self.format,
            system_prompt=self.system_prompt,
            max_rows=self.max_docs,
        )


def chat_sources(sources: list[Source]) -> list[ChatSource]:
    """The ``kind: chat`` sources of a build."""
    return [s.chat_source() for s in sources if s.kind == "chat"]


class RunnerConfig(BaseModel):
    """How Prefect runs the mapped tasks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["threads", "dask", "ray"] = "threads"
    max_workers: int = Field(2, ge=1)
    address: str | None = Field(None, description="existing Dask scheduler / Ray cluster address")


class BuildConfig(BaseModel):
    """A dataset build: sources -> chunks -> QA -> tokenized shards."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "lengthwise-build"
    sources: list[Source]
    output_dir: str = "out/build"
    docs_per_batch: int = Field(8, ge=1)
    chunker: ChunkerConfig = Field(default_factory=ChunkerConfig)
    synth: SynthConfig = Field(default_factory=SynthConfig)
    teacher: TeacherConfig = Field(default_factory=lambda: TeacherConfig(kind="none"))
    shard: ShardConfig = Field(default_factory=ShardConfig)
    teacher_concurrency: int = Field(2, ge=1, description="teacher batches in flight across the build")
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    lm: LMConfig | None = Field(
        None, description="long-document LM records mixed with the QA (null: QA only); see docs/data-mix.md"
    )
    replay: ReplayConfig | None = Field(
        None, description="short instruction data (a chat source) replayed at a share of the tokens"
    )

    @model_validator(mode="after")
    def _lm_fits(self) -> BuildConfig:
        if self.lm and self.lm.lengths and self.lm.lengths[-1] > self.shard.bucket_edges[-1]:
            raise ValueError(
                f"lm.lengths {self.lm.lengths} go beyond the largest bucket edge {self.shard.bucket_edges[-1]}: "
                "such windows could never be trained on; drop them or add a larger shard.bucket_edges entry"
            )
        return self

    def lm_lengths(self) -> list[int]:
        """The stage lengths LM windows are cut at (``lm.lengths``, default the bucket edges)."""
        return list(self.lm.lengths or self.shard.bucket_edges) if self.lm else []


def _done(folder: Path, key: str) -> bool:
    marker = folder / ".lengthwise-input"
    return (folder / "manifest.json").exists() and marker.exists() and marker.read_text() == key


def _mark(folder: Path, key: str) -> None:
    (folder / ".lengthwise-input").write_text(key)


def folder_hash(folder: str | Path) -> str:
    """Content hash of a stage folder (its manifest's shard hashes)."""
    return content_hash([(s.path, s.sha256) for s in load_manifest(folder).shards])


def _iter_sources(sources: list[Source]) -> Iterator[SourceDocument | InputProblem]:
    for src in sources:
        if src.kind != "documents":
            continue
        items = (
            read_hf_dataset(src.dataset, src.split, src.text_field)
            if src.dataset
            else read_documents([src.path], text_field=src.text_field)
        )
        n = 0
        try:
            for item in items:
                if isinstance(item, SourceDocument):
                    n += 1
                    if src.max_docs and n > src.max_docs:
                        continue
                yield item
        except Exception as exc:  # a dataset that cannot be opened (offline hub ID...): skip it, go on
            name = src.dataset or str(src.path)
            yield InputProblem(name, dataset_open_error(name, exc))


def _nothing_to_build(sources: list[Source], problems: list[InputProblem]) -> InputError:
    """Every source failed: an empty dataset would only hide the mistake (a scheduled build exits 0)."""
    why = "; ".join(f"{p.source}: {p.reason}" for p in problems[:5]) or "they hold no readable document"
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    names = ", ".join(f"sources[{i}] ({s.dataset or s.path})" for i, s in enumerate(sources))
    return InputError(
        f"no document could be read from {names}: {why}{more}. Fix the source paths (or dataset IDs) in the "
        "config; one bad source among good ones is skipped and listed, but with none left there is nothing to build"
    )


def ingest(sources: list[Source], out_dir: str | Path, docs_per_batch: int) -> list[str]:
    """Read every source into batches of documents (``docs/batch-XXXXX.arrow``); return their paths.

    Bad inputs are listed in ``docs/rejects.arrow`` and ``docs/skipped.json`` and skipped; when no
    document at all is left (and no chat source), :class:`InputError` names every source and why.
    """
    out = Path(out_dir) / "docs"
    out.mkdir(parents=True, exist_ok=True)
    docs, problems, seen = [], [], set()
    for item in _iter_sources(sources):
        if isinstance(item, InputProblem):
            problems.append(item)
        elif item.doc_id not in seen:
            seen.add(item.doc_id)
            docs.append(item)
    if not docs and not any(s.kind == "chat" for s in sources):
        raise _nothing_to_build(sources, problems)
    docs.sort(key=lambda d: d.doc_id)  # batches do not depend on listing order
    paths = []
    for i in range(0, len(docs), docs_per_batch):
        batch = docs[i : i + docs_per_batch]
        path = out / f"batch-{content_hash([d.doc_id for d in batch])}.arrow"
        if not path.exists():
            write_records(path, batch, SourceDocument)
        paths.append(str(path))
    write_records(out / "rejects.arrow", [reject_for(p) for p in problems], RejectedRecord)
    (out / "skipped.json").write_text(
        json.dumps([{"source": p.source, "reason": p.reason} for p in problems], indent=1)
    )
    return paths


def chunk_batch(doc_shard: str, out_root: str | Path, cfg: ChunkerConfig) -> str:
    """Chunk one document batch into ``chunks/<batch>/`` (skipped when already done)."""
    from data_contracts.io import read_records

    out = Path(out_root) / "chunks" / Path(doc_shard).stem
    key = content_hash(Path(doc_shard).name, cfg.model_dump(mode="json"))
    if not _done(out, key):
        chunk_corpus(list(read_records(doc_shard, SourceDocument)), out, cfg)
        _mark(out, key)
    return str(out)


def synthesize_batch(
    chunk_dir: str,
    out_root: str | Path,
    synth: SynthConfig,
    teacher: TeacherConfig,
    cache_path: str | None = None,
) -> str:
    """Synthesize QA for one chunk folder into ``qa/<batch>/`` (teacher calls are cached below this)."""
    out = Path(out_root) / "qa" / Path(chunk_dir).name
    key = content_hash(folder_hash(chunk_dir), synth.model_dump(mode="json"), teacher.model_dump(mode="json"))
    if not _done(out, key):
        synthesize_corpus([chunk_dir], out, synth, teacher, cache_path=cache_path)
        _mark(out, key)
    return str(out)


def lm_batch(
    doc_shard: str, out_root: str | Path, cfg: LMConfig, lengths: list[int], tokenizer: str | None
) -> str:
    """Cut one document batch into LM records, ``lm/<batch>/`` (skipped when already done).

    Every candidate window is written; the shard stage picks the share it needs.
    """
    from data_contracts.io import read_records
    from pipeline.stages.lm import lm_corpus

    out = Path(out_root) / "lm" / Path(doc_shard).stem
    key = content_hash(Path(doc_shard).name, cfg.model_dump(mode="json"), lengths, tokenizer)
    if not _done(out, key):
        lm_corpus(read_records(doc_shard, SourceDocument), out, cfg, lengths, tokenizer)
        _mark(out, key)
    return str(out)


def shard_all(
    qa_dirs: list[str],
    out_root: str | Path,
    cfg: ShardConfig,
    chat: list[ChatSource] | None = None,
    lm_dirs: list[str] | None = None,
    lm: LMConfig | None = None,
    replay: ReplayConfig | None = None,
) -> str:
    """Tokenize and shard every QA folder (imported chat sources, LM records, replay) into ``shards/``.

    Skipped when identical. Inputs the build could not use are listed in the dataset card; the
    manifest and card report the data mix per bucket.
    """
    out = Path(out_root) / "shards"
    skipped = [SkippedInput(**item) for item in skipped_inputs(out_root)]
    result: ShardResult = build_shards(
        sorted(qa_dirs),
        out,
        cfg,
        chat=chat or [],
        skipped=skipped,
        lm_dirs=sorted(lm_dirs or []),
        lm=lm,
        replay=replay,
    )
    return str(result.out_dir)


def remove_stale_tmp(out_root: str | Path) -> list[str]:
    """Delete temporary files of atomic writes that a killed run left (``.<name>.<random>.tmp``).

    Call it before a build starts writing: the build owns its output folder, so any such file
    there belongs to a run that no longer exists. Returns the removed paths, relative to ``out_root``.
    """
    root = Path(out_root)
    removed = []
    for path in sorted(root.rglob(f".*{TMP_SUFFIX}")) if root.is_dir() else []:
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(str(path.relative_to(root)))
    return removed


def skipped_inputs(out_root: str | Path) -> list[dict]:
    """Inputs the build could not use, with the reason (from ``docs/skipped.json``)."""
    path = Path(out_root) / "docs" / "skipped.json"
    return json.loads(path.read_text()) if path.exists() else []


def build_counts(out_root: str | Path) -> list[dict]:
    """Rows per stage and reason, for a build report table."""
    root = Path(out_root)
    rows = []
    skipped = (
        json.loads((root / "docs" / "skipped.json").read_text())
        if (root / "docs" / "skipped.json").exists()
        else []
    )
    rows.append({"stage": "ingest", "item": "skipped inputs", "count": len(skipped)})
    for stage in ("chunks", "qa", "lm"):
        for folder in sorted((root / stage).glob("*")):
            if (folder / "manifest.json").exists():
                m = load_manifest(folder)
                for s in m.shards:
                    rows.append({"stage": stage, "item": s.contract, "count": s.rows})
                for d in m.dropped:
                    rows.append({"stage": stage, "item": f"rejected: {d.name}", "count": d.count})
    for stage, folder in (("shards", root / "shards"), ("heldout", root / "shards" / HELDOUT_DIR)):
        if (folder / "manifest.json").exists():
            m = load_manifest(folder)
            rows += [{"stage": stage, "item": f"bucket <= {b.upper}", "count": b.rows} for b in m.buckets]
            rows += [{"stage": stage, "item": f"dropped: {d.name}", "count": d.count} for d in m.dropped]
    merged: dict[tuple[str, str], int] = {}
    for r in rows:
        merged[(r["stage"], r["item"])] = merged.get((r["stage"], r["item"]), 0) + r["count"]
    return [{"stage": s, "item": i, "count": c} for (s, i), c in merged.items()]
