"""Shard stage: QA records -> tokenized, length-bucketed, length-sorted Arrow shards + manifest.

Streaming and bounded in memory: tokenized rows are buffered per bucket and spilled to run files
in a staging folder; at the end each bucket is ordered by (length, example_id) using only those two
columns and written shard by shard from the memory-mapped runs. Shards appear in the output folder
by atomic rename; the manifest is written last. Same input and config give byte-identical shards.
"""

from __future__ import annotations

import bisect
import json
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data_contracts import (
    BucketSummary,
    BuildManifest,
    Conversation,
    LMRecord,
    QARecord,
    RejectedRecord,
    RejectReason,
    ShardManifest,
    SkippedInput,
    TokenizedExample,
    content_hash,
    make_id,
    to_arrow_schema,
)
from data_contracts.io import read_table, sha256_file, table_to_ipc_bytes, write_records
from pipeline.chat import ChatFormatter
from pipeline.config import ChatSource, LMConfig, ReplayConfig, ShardConfig
from pipeline.fingerprint import tokenizer_fingerprint
from pipeline.io.chat_readers import read_conversations
from pipeline.io.readers import InputProblem
from pipeline.stages import mix
from pipeline.stages.load import iter_dataset
from pipeline.stages.shards import counts, new_manifest, save_manifest
from pipeline.stages.split import HELDOUT_DIR, is_heldout, key_is_heldout
from pipeline.validate import load_manifest

SCHEMA = to_arrow_schema(TokenizedExample)
STAGING = ".staging"
REPLAY_MIN_ROOM = 16  # replay stops when fewer tokens than this are left in its budget


@dataclass
class ShardResult:
    """What the shard stage wrote (``skipped`` when an identical build was already there)."""

    out_dir: Path
    manifest: BuildManifest
    skipped: bool = False
    over_length: int = 0
    heldout: ShardResult | None = None


@dataclass
class _Bucket:
    rows: list[dict] = field(default_factory=list)
    tokens: int = 0
    runs: list[Path] = field(default_factory=list)


def input_fingerprint(qa_dirs: Sequence[str | Path]) -> str:
    """Hash of the input manifests' shard hashes: changes whenever any input shard changes."""
    parts = []
    for d in qa_dirs:
        m = load_manifest(d)
        parts.append([(s.path, s.sha256) for s in m.shards])
    return content_hash(parts)


def chat_fingerprint(sources: Sequence[ChatSource]) -> str:
    """Hash of the imported chat sources: file contents for local files, the name for hub datasets."""
    parts = []
    for src in sources:
        path = Path(src.path or src.dataset or "")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        parts.append([src.model_dump(mode="json"), [(str(f), sha256_file(f)) for f in files if f.exists()]])
    return content_hash(parts)


def formatter(cfg: ShardConfig) -> ChatFormatter:
    """The chat format a shard config describes (template, override file or plain completion)."""
    return ChatFormatter(
        cfg.tokenizer,
        system_prompt=cfg.system_prompt,
        chat_template=cfg.chat_template,
        completion=cfg.format == "completion",
    )


def tokenize_any(
    rec: QARecord | Conversation | LMRecord, fmt: ChatFormatter, cfg: ShardConfig, config_hash: str
) -> dict:
    """One tokenized row for a QA record, an imported conversation or an LM record."""
    if isinstance(rec, LMRecord):
        return tokenize_lm(rec, fmt, config_hash)
    if isinstance(rec, Conversation):
        return tokenize_conversation(rec, fmt, cfg, config_hash)
    return tokenize_record(rec, fmt, cfg, config_hash)


def tokenize_lm(rec: LMRecord, fmt: ChatFormatter, config_hash: str) -> dict:
    """One tokenized row for an LM record: plain text (no template, whatever ``shard.format`` says).

    Loss on every token; the end-of-sequence token follows only when the record ends its document.
    """
    ids = fmt.hf.backend_tokenizer.encode(rec.text, add_special_tokens=False).ids
    if rec.ends_document and fmt.hf.eos_token_id is not None:
        ids = [*ids, fmt.hf.eos_token_id]
    return {
        "example_id": make_id("ex", rec.lm_id, config_hash),
        "qa_id": rec.lm_id,
        "doc_ids": [rec.doc_id],
        "task_type": "lm",
        "input_ids": np.asarray(ids, dtype=np.int32),
        "loss_weights": np.ones(len(ids), dtype=np.float32),
        "length": len(ids),
        "n_answer_tokens": len(ids),
        "bucket": 0,
        "evidence_depth_pct": float("nan"),  # no evidence: the document itself is the target
    }


def tokenize_conversation(conv: Conversation, fmt: ChatFormatter, cfg: ShardConfig, config_hash: str) -> dict:
    """One tokenized row for a conversation: loss on its trained turns (assistant turns by default)."""
    ids, weights = fmt.encode_turns(conv.turns, cfg.assistant_turns, cfg.answer_weight)
    return {
        "example_id": make_id("ex", conv.conversation_id, config_hash),
        "qa_id": conv.conversation_id,
        "doc_ids": list(conv.doc_ids),
        "task_type": conv.task_type,
        "input_ids": ids,
        "loss_weights": weights,
        "length": len(ids),
        "n_answer_tokens": int((weights > 0).sum()),
        "bucket": 0,
        "evidence_depth_pct": float("nan"),  # no evidence in a conversation
    }


def tokenize_record(rec: QARecord, fmt: ChatFormatter, cfg: ShardConfig, config_hash: str) -> dict:
    """One tokenized row (columns of :class:`TokenizedExample`) for a QA record."""
    enc = fmt.encode(rec.context, rec.question, rec.answer)
    weights = np.zeros(enc.length, dtype=np.float32)
    weights[enc.context_mask] = cfg.context_weight
    weights[enc.answer_mask] = cfg.answer_weight
    return {
        "example_id": make_id("ex", rec.qa_id, config_hash),
        "qa_id": rec.qa_id,
        "doc_ids": list(rec.doc_ids),
        "task_type": rec.task_type.value,
        "input_ids": enc.input_ids,
        "loss_weights": weights,
        "length": enc.length,
        "n_answer_tokens": int(enc.answer_mask.sum()),
        "bucket": 0,
        "evidence_depth_pct": float(rec.evidence_depth_pct),
    }


def rows_to_table(rows: list[dict]) -> pa.Table:
    """Columns of tokenized rows as a contract-stamped Arrow table (list columns built in bulk)."""

    def lists(name: str, dtype) -> pa.Array:
        values = [np.asarray(r[name], dtype=dtype) for r in rows]
        offsets = np.concatenate([[0], np.cumsum([len(v) for v in values])]).astype(np.int32)
        flat = np.concatenate(values) if values else np.zeros(0, dtype=dtype)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat), type=SCHEMA.field(name).type)

    cols = {
        "example_id": pa.array([r["example_id"] for r in rows], pa.string()),
        "qa_id": pa.array([r["qa_id"] for r in rows], pa.string()),
        "doc_ids": pa.array([r["doc_ids"] for r in rows], SCHEMA.field("doc_ids").type),
        "task_type": pa.array([r["task_type"] for r in rows], pa.string()),
        "input_ids": lists("input_ids", np.int32),
        "loss_weights": lists("loss_weights", np.float32),
        "length": pa.array([r["length"] for r in rows], pa.int32()),
        "n_answer_tokens": pa.array([r["n_answer_tokens"] for r in rows], pa.int32()),
        "bucket": pa.array([r["bucket"] for r in rows], pa.int32()),
        "evidence_depth_pct": pa.array([r["evidence_depth_pct"] for r in rows], pa.float32()),
    }
    return pa.Table.from_arrays(list(cols.values()), schema=SCHEMA)


def _write_ipc(path: Path, table: pa.Table) -> str:
    """Atomic write of one shard; returns its sha256."""
    from data_contracts.io import atomic_write_bytes

    atomic_write_bytes(path, table_to_ipc_bytes(table))
    return sha256_file(path)


def build_shards(
    qa_dirs: Sequence[str | Path],
    out_dir: str | Path,
    cfg: ShardConfig,
    *,
    progress: Callable[[int], None] | None = None,
    records: Iterable[QARecord] | None = None,
    workers: int = 1,
    chat: Sequence[ChatSource] = (),
    skipped: Sequence[SkippedInput] = (),
    lm_dirs: Sequence[str | Path] = (),
    lm: LMConfig | None = None,
    replay: ReplayConfig | None = None,
) -> ShardResult:
    """Tokenize, bucket, sort and write shards; skip the work when an identical build exists.

    ``chat`` adds imported conversations (see :mod:`pipeline.io.chat_readers`); their bad rows, and
    ``skipped`` inputs of earlier stages, are listed in the manifest and the dataset card. With ``cfg.heldout_fraction > 0`` the held-out records go to ``out_dir/heldout`` (a complete
    build of its own, with manifest and card) and never into the training shards in ``out_dir``.
    ``lm_dirs`` (folders of :class:`LMRecord`, see :mod:`pipeline.stages.lm`) are mixed in at
    ``lm.share`` of the QA+LM tokens per bucket, ``replay`` rows at up to ``replay.share`` of all
    tokens (:mod:`pipeline.stages.mix`); the manifest reports the mix per bucket.
    ``workers > 1`` tokenizes in that many processes (order and output are unchanged).
    """
    if lm_dirs and lm is None:
        raise ValueError("lm_dirs need an LMConfig (lm=...) that says which share of the tokens they get")
    if records is not None and cfg.heldout_fraction > 0:
        records = list(records)  # read twice: once per side of the split
    fmt = formatter(cfg)
    fingerprint = input_fingerprint(qa_dirs) if records is None else "records"
    fingerprint = content_hash(
        fingerprint,
        chat_fingerprint(chat),
        [s.model_dump() for s in skipped],
        input_fingerprint(lm_dirs) if lm_dirs else None,
        chat_fingerprint([replay]) if replay else None,
    )
    inputs = _Inputs(
        qa_dirs, records, chat, list(skipped), tokenizer_fingerprint(cfg.tokenizer), list(lm_dirs), lm, replay
    )
    sides = [("train", Path(out_dir))]
    if cfg.heldout_fraction > 0:
        sides.append(("heldout", Path(out_dir) / HELDOUT_DIR))
    results = [
        _build_split(inputs, out, cfg, split, fmt, fingerprint, progress, workers) for split, out in sides
    ]
    results[0].heldout = results[1] if len(results) > 1 else None
    return results[0]


@dataclass
class _Inputs:
    """What a shard build reads: QA records, chat sources, inputs skipped upstream, and the mix.

    The mix: LM record folders with their share, replay rows with theirs.
    """

    qa_dirs: Sequence[str | Path]
    records: Iterable[QARecord] | None
    chat: Sequence[ChatSource]
    skipped: list[SkippedInput]
    tokenizer_fingerprint: str
    lm_dirs: list[str | Path] = field(default_factory=list)
    lm: LMConfig | None = None
    replay: ReplayConfig | None = None

    def stream(self, problems: list[SkippedInput]) -> Iterator[QARecord | Conversation]:
        """Every record to tokenize; unusable chat rows are appended to ``problems``."""
        if self.records is not None:
            yield from self.records
        else:
            for d in self.qa_dirs:
                yield from iter_dataset(d, QARecord)
        for src in self.chat:
            yield from _conversations(src, problems)

    def mix_spec(self) -> dict:
        """The mix settings, for the config hash and the manifest."""
        return {
            "lm": self.lm.model_dump(mode="json") if self.lm and self.lm_dirs else None,
            "replay": self.replay.model_dump(mode="json") if self.replay else None,
        }


def _conversations(src: ChatSource, problems: list[SkippedInput]) -> Iterator[Conversation]:
    for item in read_conversations(
        src.path or src.dataset, src.format, src.split, src.system_prompt, src.max_rows
    ):
        if isinstance(item, InputProblem):
            problems.append(SkippedInput(source=item.source, reason=item.reason))
        else:
            yield item


@dataclass
class _Placer:
    """Puts tokenized rows into their buckets (spilling to runs), counting tasks, kinds and drops."""

    cfg: ShardConfig
    staging: Path
    progress: Callable[[int], None] | None
    buckets: dict[int, _Bucket] = field(default_factory=lambda: defaultdict(_Bucket))
    dropped: Counter = field(default_factory=Counter)
    tasks: Counter = field(default_factory=Counter)
    rejects: list[RejectedRecord] = field(default_factory=list)
    tally: mix.MixTally = field(default_factory=mix.MixTally)
    n_in: int = 0

    def add(self, rec: QARecord | Conversation | LMRecord, row: dict) -> None:
        """Place one tokenized row (or reject it when it exceeds the last bucket)."""
        self.n_in += 1
        edges = self.cfg.bucket_edges
        k = bisect.bisect_left(edges, row["length"])
        if k == len(edges):
            self.dropped[RejectReason.OVER_MAX_BUCKET.value] += 1
            self.rejects.append(_over_length(rec, row["length"], edges[-1]))
            return
        row["bucket"] = edges[k]
        self.tasks[row["task_type"]] += 1
        self.tally.add(row["bucket"], mix.kind_of(rec), row["length"], int(row["n_answer_tokens"]))
        b = self.buckets[row["bucket"]]
        b.rows.append(row)
        b.tokens += row["length"]
        if b.tokens >= self.cfg.run_tokens:
            _spill(self.staging, row["bucket"], b)
        if self.progress:
            self.progress(1)


def _build_split(
    inputs: _Inputs,
    out: Path,
    cfg: ShardConfig,
    split: str,
    fmt: ChatFormatter,
    fingerprint: str,
    progress: Callable[[int], None] | None,
    workers: int,
) -> ShardResult:
    # run_tokens only decides when to spill to disk; it must not change a single output byte.
    spec = inputs.mix_spec()
    cfg_hash = content_hash(
        cfg.model_dump(mode="json", exclude={"run_tokens"}),
        fmt.spec,
        fmt.template_hash,
        fingerprint,
        split,
        *([spec] if any(spec.values()) else []),  # builds without a mix keep their hashes
    )
    existing = _existing(out, cfg_hash)
    if existing is not None:
        return ShardResult(out, existing, skipped=True)
    staging = out / STAGING
    shutil.rmtree(staging, ignore_errors=True)  # leftovers of a killed run are never reused
    staging.mkdir(parents=True)
    placer = _Placer(cfg, staging, progress)
    problems = list(inputs.skipped)
    held = split == "heldout"
    source = inputs.stream(problems)
    source = (r for r in source if is_heldout(r, cfg.heldout_fraction, cfg.heldout_by) == held)
    for rec, row in _tokenized(source, fmt, cfg, cfg_hash, workers):
        placer.add(rec, row)
    report = mix.MixReport()
    # The mix is training data: the held-out split stays QA only, so evaluation scores answers, and
    # LM windows of held-out documents are used nowhere (the key filter keeps them out of training).
    if inputs.lm and inputs.lm_dirs and not held:
        _mix_lm(inputs, placer, fmt, cfg, cfg_hash, workers, report)
    if inputs.replay and not held:
        _mix_replay(inputs.replay, placer, fmt, cfg, cfg_hash, problems, report)
    report.emit()
    shards = []
    for edge in sorted(placer.buckets):
        _spill(staging, edge, placer.buckets[edge])
        shards.extend(_write_bucket(out, staging, edge, placer.buckets[edge].runs, cfg, cfg_hash))
    if placer.rejects:
        digest = write_records(out / "rejects-00000.arrow", placer.rejects, RejectedRecord)
        shards.append(
            ShardManifest(
                path="rejects-00000.arrow",
                contract=RejectedRecord.CONTRACT,
                contract_version=RejectedRecord.VERSION,
                rows=len(placer.rejects),
                tokens=0,
                min_length=0,
                max_length=0,
                bytes=(out / "rejects-00000.arrow").stat().st_size,
                sha256=digest,
                config_hash=cfg_hash,
            )
        )
    shutil.rmtree(staging, ignore_errors=True)
    summaries = [
        BucketSummary(
            upper=e,
            rows=sum(s.rows for s in shards if s.bucket == e),
            tokens=sum(s.tokens for s in shards if s.bucket == e),
            shards=sum(s.bucket == e for s in shards),
            mix=placer.tally.rows_for(e),
        )
        for e in cfg.bucket_edges
    ]
    config = {**cfg.model_dump(mode="json"), "split": split}
    if any(spec.values()):
        config["mix"] = spec
    manifest = new_manifest(
        "tokenized",
        json.dumps(config),
        cfg_hash,
        shards,
        tokenizer=fmt.spec,
        tokenizer_fingerprint=inputs.tokenizer_fingerprint,
        bucket_edges=cfg.bucket_edges,
        input_rows=placer.n_in,
        buckets=summaries,
        task_counts=counts(placer.tasks),
        dropped=counts(placer.dropped),
        skipped=problems,
    )
    from pipeline.stages.card import write_card

    # The card first: the manifest marks the build as complete, so a crash here leaves no "done" build.
    write_card(out, manifest, upstream_dropped=_upstream_dropped(inputs.qa_dirs), mix_notes=report)
    save_manifest(out, manifest)
    return ShardResult(out, manifest, over_length=sum(placer.dropped.values()))


def _mix_lm(
    inputs: _Inputs,
    placer: _Placer,
    fmt: ChatFormatter,
    cfg: ShardConfig,
    cfg_hash: str,
    workers: int,
    report: mix.MixReport,
) -> None:
    """Add the LM records that bring each training bucket to ``lm.share`` of its QA+LM tokens.

    Windows of held-out documents (or held-out single records) are never candidates.
    """
    assert inputs.lm is not None
    frac, by = cfg.heldout_fraction, cfg.heldout_by
    candidates = (
        c
        for c in mix.lm_candidates(inputs.lm_dirs)
        if not key_is_heldout(c.doc_id if by == "document" else c.lm_id, frac)
    )
    qa = {e: placer.tally.tokens(e, mix.QA_KINDS) for e in cfg.bucket_edges}
    pick = mix.pick_lm(candidates, qa, cfg.bucket_edges, inputs.lm.share, inputs.lm.seed)
    chosen = (r for d in inputs.lm_dirs for r in iter_dataset(d, LMRecord) if r.lm_id in pick.picked)
    for rec, row in _tokenized(chosen, fmt, cfg, cfg_hash, workers):
        placer.add(rec, row)
    report.lm(placer.tally, cfg.bucket_edges, inputs.lm.share, pick)


def _mix_replay(
    replay: ReplayConfig,
    placer: _Placer,
    fmt: ChatFormatter,
    cfg: ShardConfig,
    cfg_hash: str,
    problems: list[SkippedInput],
    report: mix.MixReport,
) -> None:
    """Add replay rows (training split), in the seeded hash order, within ``replay.share`` of all tokens."""
    rows = [
        c.model_copy(update={"task_type": mix.REPLAY_TASK})
        for c in _conversations(replay, problems)
        if not is_heldout(c, cfg.heldout_fraction, cfg.heldout_by)
    ]
    rows.sort(key=lambda c: mix.pick_order(replay.seed, c.conversation_id))
    budget = mix.replay_budget(placer.tally.tokens(), replay.share)
    used = available = 0
    for conv in rows:
        if budget - used < REPLAY_MIN_ROOM:  # full: tokenizing the rest would change nothing
            available = None
            break
        row = tokenize_any(conv, fmt, cfg, cfg_hash)
        available += row["length"]
        if used + row["length"] <= budget and row["length"] <= cfg.bucket_edges[-1]:
            used += row["length"]
            placer.add(conv, row)
    report.replay(placer.tally, replay.share, available)


def _upstream_dropped(qa_dirs: Sequence[str | Path]) -> Counter:
    """What synthesis rejected, by reason, summed over the input folders' manifests (for the card)."""
    total: Counter = Counter()
    for d in qa_dirs:
        root = Path(d)
        for m in (
            [root / "manifest.json"] if (root / "manifest.json").exists() else root.glob("*/manifest.json")
        ):
            upstream = load_manifest(m.parent)
            if upstream.kind == "qa":
                total.update({c.name: c.count for c in upstream.dropped})
    return total


def _tokenized(
    source: Iterable[QARecord | Conversation],
    fmt: ChatFormatter,
    cfg: ShardConfig,
    cfg_hash: str,
    workers: int,
) -> Iterator[tuple[QARecord | Conversation, dict]]:
    if workers <= 1:
        for rec in source:
            yield rec, tokenize_any(rec, fmt, cfg, cfg_hash)
        return
    from multiprocessing import get_context

    with get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(cfg, cfg_hash)) as pool:
        recs = iter(source)
        while True:  # bounded windows keep memory flat however large the input is
            window = [r for _, r in zip(range(256 * workers), recs, strict=False)]
            if not window:
                return
            yield from zip(window, pool.imap(_tokenize_in_worker, window, chunksize=8), strict=True)


_WORKER: tuple[ChatFormatter, ShardConfig, str] | None = None


def _init_worker(cfg: ShardConfig, cfg_hash: str) -> None:
    global _WORKER
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER = (formatter(cfg), cfg, cfg_hash)


def _tokenize_in_worker(rec: QARecord | Conversation) -> dict:
    assert _WORKER is not None
    fmt, cfg, cfg_hash = _WORKER
    return tokenize_any(rec, fmt, cfg, cfg_hash)


def _existing(out: Path, cfg_hash: str) -> BuildManifest | None:
    """The manifest of a finished identical build whose shards are all intact, if any."""
    if not (out / "manifest.json").exists():
        return None
    try:
        m = load_manifest(out)
    except ValueError:
        return None
    if m.config_hash != cfg_hash:
        return None
    ok = all((out / s.path).exists() and sha256_file(out / s.path) == s.sha256 for s in m.shards)
    return m if ok else None


def _over_length(rec: QARecord | Conversation | LMRecord, length: int, limit: int) -> RejectedRecord:
    if isinstance(rec, LMRecord):
        return RejectedRecord(
            reject_id=make_id("rej", "shard", rec.lm_id),
            stage="shard",
            reason=RejectReason.OVER_MAX_BUCKET,
            doc_ids=[rec.doc_id],
            detail=f"{rec.source}[{rec.char_start}:{rec.char_end}]: {length} tokens > last bucket {limit}; "
            "cut LM windows at the bucket edges (lm.lengths)",
        )
    if isinstance(rec, Conversation):
        return RejectedRecord(
            reject_id=make_id("rej", "shard", rec.conversation_id),
            stage="shard",
            reason=RejectReason.OVER_MAX_BUCKET,
            doc_ids=list(rec.doc_ids),
            detail=f"{rec.source}: {length} tokens > last bucket {limit}; add a larger bucket edge",
        )
    return RejectedRecord(
        reject_id=make_id("rej", "shard", rec.qa_id),
        stage="shard",
        reason=RejectReason.OVER_MAX_BUCKET,
        task_type=rec.task_type,
        doc_ids=list(rec.doc_ids),
        detail=f"{rec.qa_id}: {length} tokens > last bucket {limit}; add a larger bucket edge "
        "or synthesize with smaller target lengths",
    )


def _spill(staging: Path, edge: int, b: _Bucket) -> None:
    if not b.rows:
        return
    path = staging / f"run-{edge}-{len(b.runs):05d}.arrow"
    path.write_bytes(table_to_ipc_bytes(rows_to_table(b.rows)))
    b.runs.append(path)
    b.rows, b.tokens = [], 0


def _write_bucket(
    out: Path, staging: Path, edge: int, runs: list[Path], cfg: ShardConfig, cfg_hash: str
) -> Iterator[ShardManifest]:
    """Order a bucket by (length, example_id) and write it in shards, one shard in memory at a time."""
    table = pa.concat_tables([read_table(p) for p in runs])  # memory-mapped
    order = pc.sort_indices(
        table.select(["length", "example_id"]),
        sort_keys=[("length", "ascending"), ("example_id", "ascending")],
    )
    lengths = pc.take(table["length"], order).to_numpy()
    start, index = 0, 0
    while start < len(order):
        end = start
        tokens = 0
        while (
            end < len(order) and end - start < cfg.shard_rows and (tokens < cfg.shard_tokens or end == start)
        ):
            tokens += int(lengths[end])
            end += 1
        shard = table.take(order[start:end]).combine_chunks()
        rel = f"len_{edge:06d}/part-{index:05d}.arrow"
        staged = staging / rel.replace("/", "_")
        digest = _write_ipc(staged, shard)
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, out / rel)  # atomic: a shard is either absent or complete
        yield ShardManifest(
            path=rel,
            contract=TokenizedExample.CONTRACT,
            contract_version=TokenizedExample.VERSION,
            rows=end - start,
            tokens=tokens,
            min_length=int(lengths[start]),
            max_length=int(lengths[end - 1]),
            bytes=(out / rel).stat().st_size,
            sha256=digest,
            bucket=edge,
            config_hash=cfg_hash,
        )
        start, index = end, index + 1


def inspect_lines(out_dir: str | Path, width: int = 40) -> list[str]:
    """The manifest summary and a text histogram of rows per bucket."""
    m = load_manifest(out_dir)
    lines = [
        f"{out_dir}: {m.kind}, {m.rows} rows, {m.tokens} tokens in {len(m.shards)} shards "
        f"(tokenizer {m.tokenizer}, config {m.config_hash})"
    ]
    top = max((b.rows for b in m.buckets), default=0) or 1
    for b in m.buckets:
        bar = "#" * round(width * b.rows / top)
        mixed = ", ".join(f"{m.kind} {m.tokens / b.tokens:.0%}" for m in b.mix) if len(b.mix) > 1 else ""
        lines.append(
            f"  <= {b.upper:>6}: {b.rows:>7} rows {b.tokens:>11} tokens  {bar}"
            + (f"  [{mixed}]" if mixed else "")
        )
    for c in m.task_counts:
        lines.append(f"  task {c.name}: {c.count}")
    for c in m.dropped:
        lines.append(f"  dropped {c.name}: {c.count}")
    for item in m.skipped:
        lines.append(f"  skipped {item.source}: {item.reason}")
    return lines


__all__ = ["ShardResult", "build_shards", "input_fingerprint", "inspect_lines"]
