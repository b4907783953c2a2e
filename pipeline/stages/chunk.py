"""Chunk stage: documents in, a folder of document + chunk shards and a manifest out."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from data_contracts import BuildManifest, Chunk, RejectedRecord, RejectReason, SourceDocument, make_id
from data_contracts.io import atomic_write_text
from pipeline.chunking.quality import ChunkStats, summarize
from pipeline.config import ChunkerConfig, build_chunker
from pipeline.io.readers import InputProblem, read_documents
from pipeline.stages.shards import ShardWriter, counts, write_manifest

_BATCH_CHARS = 4_000_000  # documents handed to chunk_batch at once


@dataclass
class ChunkResult:
    """What the chunk stage wrote, its quality summary and the inputs it skipped."""

    out_dir: Path
    manifest: BuildManifest
    stats: ChunkStats
    problems: list[InputProblem] = field(default_factory=list)


def _batches(docs: Iterable[SourceDocument]) -> Iterator[list[SourceDocument]]:
    batch: list[SourceDocument] = []
    size = 0
    for d in docs:
        batch.append(d)
        size += d.n_chars
        if size >= _BATCH_CHARS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def reject_for(problem: InputProblem, stage: str = "ingest") -> RejectedRecord:
    """A typed reject record for an input that could not be used."""
    return RejectedRecord(
        reject_id=make_id("rej", stage, problem.source, problem.reason),
        stage=stage,
        reason=RejectReason.BAD_INPUT,
        detail=f"{problem.source}: {problem.reason}",
    )


def chunk_corpus(
    inputs: Iterable[str | Path | SourceDocument],
    out_dir: str | Path,
    cfg: ChunkerConfig,
    *,
    text_field: str = "text",
    output_format: str = "arrow",
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ChunkResult:
    """Read, chunk and write a corpus; bad inputs are reported and skipped, never fatal.

    Writes ``documents-*.arrow`` (the source texts, needed later for long contexts),
    ``chunks-*.arrow`` (or ``chunks.jsonl``), ``rejects-*.arrow`` for unusable inputs, and
    ``manifest.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chunker = build_chunker(cfg)
    cfg_hash = chunker.config_hash
    doc_writer = ShardWriter(out, "documents", SourceDocument, cfg_hash, rows_per_shard=1000)
    chunk_writer = ShardWriter(out, "chunks", Chunk, cfg_hash, length_of=lambda c: c.token_count)
    reject_writer = ShardWriter(out, "rejects", RejectedRecord, cfg_hash)
    problems: list[InputProblem] = []
    all_chunks: list[Chunk] = []
    seen: set[str] = set()

    def documents() -> Iterator[SourceDocument]:
        paths = [i for i in inputs if not isinstance(i, SourceDocument)]
        yield from (i for i in inputs if isinstance(i, SourceDocument))
        for item in read_documents(paths, text_field=text_field):
            if isinstance(item, InputProblem):
                problems.append(item)
            elif item.doc_id in seen:  # identical text under another name: chunk it once
                problems.append(
                    InputProblem(item.source, f"duplicate of an earlier document ({item.doc_id})")
                )
            else:
                seen.add(item.doc_id)
                yield item

    for batch in _batches(documents()):
        for doc, chunks in zip(batch, _chunk_safely(chunker, batch, workers, problems), strict=True):
            if chunks is None:
                continue
            doc_writer.add(doc)
            chunk_writer.extend(chunks)
            all_chunks.extend(chunks)
            if progress:
                progress(1)
    reject_writer.extend(reject_for(p) for p in problems)
    shards = doc_writer.close() + chunk_writer.close() + reject_writer.close()
    if output_format == "jsonl":
        lines = "".join(json.dumps(c.model_dump(mode="json"), ensure_ascii=False) + "\n" for c in all_chunks)
        atomic_write_text(out / "chunks.jsonl", lines)
    manifest = write_manifest(
        out,
        "chunks",
        cfg.model_dump_json(),
        cfg_hash,
        shards,
        tokenizer=chunker.tokenizer.name,
        input_rows=doc_writer_rows(shards) + len(problems),
        dropped=counts(Counter(RejectReason.BAD_INPUT.value for _ in problems)),
    )
    return ChunkResult(out, manifest, summarize(all_chunks, cfg.max_tokens), problems)


def doc_writer_rows(shards) -> int:
    """Rows of the documents shards in a shard list."""
    return sum(s.rows for s in shards if s.contract == SourceDocument.CONTRACT)


def _chunk_safely(chunker, batch, workers, problems) -> list[list[Chunk] | None]:
    """Chunk a batch; if it fails, retry document by document so one bad document loses only itself."""
    try:
        return chunker.chunk_batch(batch, workers=workers or os.cpu_count())
    except Exception:  # noqa: BLE001 - isolate the failing document below, then report it
        out: list[list[Chunk] | None] = []
        for doc in batch:
            try:
                out.append(chunker.chunk_document(doc))
            except Exception as exc:  # noqa: BLE001
                problems.append(InputProblem(doc.source, f"chunking failed: {type(exc).__name__}: {exc}"))
                out.append(None)
        return out
