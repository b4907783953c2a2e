"""Synthesis stage: chunk folders in, QA + reject shards and a manifest out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from data_contracts import (
    BuildManifest,
    Chunk,
    QARecord,
    RejectedRecord,
    SourceDocument,
    TaskType,
    content_hash,
)
from pipeline.assets import cache_dir
from pipeline.chat import ChatFormatter
from pipeline.config import SynthConfig, TeacherConfig
from pipeline.stages.load import iter_dataset
from pipeline.stages.shards import ShardWriter, counts, write_manifest
from pipeline.synthesis.cache import CachedTeacher, ResponseCache
from pipeline.synthesis.factory import build_dedup_embedder, build_judge, build_teacher
from pipeline.synthesis.selfinstruct import SelfInstructSynthesizer
from pipeline.synthesis.teacher_free import TeacherFreeGenerator


@dataclass
class DryRunEstimate:
    """What a run would cost before it makes any call."""

    calls: int
    cached: int
    prompt_tokens: int
    max_completion_tokens: int
    teacher_free_records: int
    verify_calls: int = 0
    closed_book_calls: int = 0

    def line(self) -> str:
        """One-line summary."""
        checks = ""
        if self.verify_calls or self.closed_book_calls:
            checks = (
                f" + up to {self.verify_calls} verification and {self.closed_book_calls} closed-book calls "
                "(one per answer that passes the other gates)"
            )
        return (
            f"dry run: {self.calls} teacher calls ({self.cached} already cached){checks}, ~{self.prompt_tokens} "
            f"prompt tokens, at most {self.max_completion_tokens} completion tokens (plus retries/repairs); "
            f"{self.teacher_free_records} teacher-free records"
        )


@dataclass
class SynthResult:
    """What the synthesis stage wrote and what it cost."""

    out_dir: Path
    manifest: BuildManifest | None
    kept: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    calls: int = 0
    cache_hits: int = 0
    estimate: DryRunEstimate | None = None

    def lines(self) -> list[str]:
        """Human-readable summary."""
        if self.estimate is not None:
            return [self.estimate.line()]
        out = [
            f"kept {sum(self.kept.values())} records: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.kept.items())),
            f"rejected {sum(self.rejected.values())}: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items())) or "none"),
            f"teacher calls {self.calls}, cache hits {self.cache_hits}",
        ]
        return out


def load_corpus(chunk_dirs: Sequence[str | Path]) -> tuple[list[SourceDocument], list[Chunk]]:
    """Documents and chunks from one or more chunk-stage output folders."""
    docs: dict[str, SourceDocument] = {}
    chunks: list[Chunk] = []
    for folder in chunk_dirs:
        docs.update({d.doc_id: d for d in iter_dataset(folder, SourceDocument)})
        chunks.extend(iter_dataset(folder, Chunk))
    return sorted(docs.values(), key=lambda d: d.doc_id), chunks


def synthesize_corpus(
    chunk_dirs: Sequence[str | Path],
    out_dir: str | Path,
    cfg: SynthConfig,
    teacher_cfg: TeacherConfig,
    *,
    dry_run: bool = False,
    cache_path: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> SynthResult:
    """Generate teacher-free and self-instruct records for the documents in ``chunk_dirs``."""
    out = Path(out_dir)
    docs, chunks = load_corpus(chunk_dirs)
    fmt = ChatFormatter(cfg.student_tokenizer)
    teacher = build_teacher(teacher_cfg)
    cached = judge = None
    if teacher is not None:
        # A dry run reads the cache (to count hits) but never creates or writes it.
        store = ResponseCache(cache_path or cache_dir() / "teacher-cache.sqlite", readonly=dry_run)
        cached = CachedTeacher(teacher, store)
        judge_teacher = build_judge(teacher_cfg)
        judge = CachedTeacher(judge_teacher, store) if judge_teacher is not None else None
    synth = None
    if cached is not None:
        embedder = None if dry_run else build_dedup_embedder(cfg.dedup_embedder)
        synth = SelfInstructSynthesizer(docs, chunks, fmt, cached, cfg, judge=judge, embedder=embedder)
    candidates = synth.plan() if synth else []
    tf_tasks = [TaskType(t) for t in cfg.teacher_free_tasks] if cfg.teacher_free_per_length else []
    n_tf = len(tf_tasks) * len(cfg.target_lengths) * cfg.teacher_free_per_length
    if dry_run:
        return SynthResult(out, None, estimate=_estimate(candidates, synth, cached, fmt, n_tf))
    cfg_hash = content_hash(cfg.model_dump(mode="json"), teacher_cfg.model_dump(mode="json"), fmt.spec)
    qa_writer = ShardWriter(
        out, "qa", QARecord, cfg_hash, rows_per_shard=2000, length_of=lambda r: r.n_tokens
    )
    rej_writer = ShardWriter(out, "rejects", RejectedRecord, cfg_hash)
    result = SynthResult(out, None)
    if n_tf:
        generator = TeacherFreeGenerator(docs, fmt, cfg.depth_bins)
        for rec in generator.generate(tf_tasks, cfg.target_lengths, cfg.teacher_free_per_length, cfg.seed):
            qa_writer.add(rec)
            result.kept[rec.task_type.value] += 1
            if progress:
                progress(1)
    if synth is not None:
        for outcome in synth.run(candidates, batch_size=max(1, teacher_cfg.batch_size), progress=progress):
            if isinstance(outcome, QARecord):
                qa_writer.add(outcome)
                result.kept[outcome.task_type.value] += 1
            else:
                rej_writer.add(outcome)
                result.rejected[outcome.reason.value] += 1
        result.calls = cached.calls + (judge.calls if judge else 0)
        result.cache_hits = cached.hits + (judge.hits if judge else 0)
    shards = qa_writer.close() + rej_writer.close()
    result.manifest = write_manifest(
        out,
        "qa",
        cfg.model_dump_json(),
        cfg_hash,
        shards,
        tokenizer=fmt.spec,
        bucket_edges=sorted(cfg.target_lengths),
        input_rows=n_tf + len(candidates),
        task_counts=counts(result.kept),
        dropped=counts(result.rejected),
    )
    return result


def _estimate(
    candidates, synth, cached: CachedTeacher | None, fmt: ChatFormatter, n_tf: int
) -> DryRunEstimate:
    prompt = sum(fmt.count("\n".join(c for _, c in cand.request.messages)) for cand in candidates)
    hits = sum(cached.cached(c.request) for c in candidates) if cached else 0
    # a whole-document summary is one call per chunk plus the reduce
    map_calls = sum(len(c.chunks) for c in candidates if c.task.value == "doc_summary")
    n_verify = len(candidates) if synth is not None and synth.verifying else 0
    n_closed = len(candidates) if synth is not None and synth.closed_book else 0
    return DryRunEstimate(
        calls=len(candidates) - hits + map_calls,
        cached=hits,
        # a verification prompt holds the evidence and the QA (~300 tokens); a closed-book one the question
        prompt_tokens=prompt + 300 * n_verify + 40 * n_closed,
        max_completion_tokens=sum(c.request.max_tokens for c in candidates) + 128 * n_verify + 96 * n_closed,
        teacher_free_records=n_tf,
        verify_calls=n_verify,
        closed_book_calls=n_closed,
    )
