"""Synthesis quality gates and teacher throughput against an adversarial OpenAI-compatible server.

Quality: the server (tests/synthesis/adversarial_server.py, a real HTTP server) answers each
generation request with a good reply or one of the bad classes (negated answers, truncated
replies, reworded and exact duplicates, closed-book-answerable questions, soft refusals,
paraphrased quotes, failure strings, invented ellipsis quotes, unrelated summaries), and some good
replies arrive after a 429, a 500 or a timeout. The corpus is documents no test uses: three
manuals generated here from a seed and ``samples/corpus/python-library-re.rst``. Measured: bad
records kept as a share of the kept records, good items kept, failure strings kept, and a rerun
(zero calls, identical shards).

Throughput: good replies only, verification and closed-book checks on, against an instant server
and a server that takes 1 s per reply; calls/s against the concurrency-bound ideal.

Run: ``python benchmarks/synthesis_gates.py`` (writes benchmarks/results/synthesis_gates.json).
``--throughput-only --label before`` with PYTHONPATH at an older checkout measures that code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "synthesis_gates.json"
CONCURRENCY = 8

_SYSTEMS = [
    "ledger",
    "scheduler",
    "gateway",
    "archive",
    "relay",
    "indexer",
    "vault",
    "monitor",
    "broker",
    "mailer",
]
_VERBS = ["rotates", "compacts", "replicates", "validates", "throttles", "encrypts", "retries", "batches"]
_OBJECTS = [
    "session tokens",
    "audit records",
    "queued jobs",
    "snapshot files",
    "routing tables",
    "cache entries",
]
_UNITS = ["minutes", "hours", "requests", "megabytes"]


def make_manual(seed: int, sections: int = 18) -> str:
    """A seeded operations manual: numbered sections of concrete, checkable rules."""
    rng = random.Random(seed)
    lines = [f"Operations manual {seed}", ""]
    for s in range(1, sections + 1):
        system = rng.choice(_SYSTEMS)
        lines += [f"Section {s}: the {system} service", ""]
        for _ in range(3):
            para = []
            for _ in range(rng.randint(3, 5)):
                n = rng.randint(2, 900)
                para.append(
                    f"The {system} service {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} every {n} "
                    f"{rng.choice(_UNITS)} when the {rng.choice(_SYSTEMS)} node reports load above "
                    f"{rng.randint(10, 99)} percent."
                )
            para.append(
                f"Operators of the {system} service must file change ticket {rng.randint(1000, 9999)} first."
            )
            lines += [" ".join(para), ""]
    return "\n".join(lines)


def corpus(work: Path) -> Path:
    src = work / "docs"
    src.mkdir(parents=True, exist_ok=True)
    for seed in (101, 202, 303):
        (src / f"manual-{seed}.txt").write_text(make_manual(seed))
    (src / "python-library-re.rst").write_text((REPO / "samples/corpus/python-library-re.rst").read_text())
    return src


def _configs(url: str, delay_timeout: float, **synth):
    from pipeline.config import SynthConfig, TeacherConfig

    fields = SynthConfig.model_fields
    values = {k: v for k, v in synth.items() if k in fields}
    if "closed_book_check" in values and "verify_answers" not in fields:
        values["closed_book_check"] = True  # older code: a plain switch
    cfg = SynthConfig(**values)
    tcfg = TeacherConfig(
        kind="openai",
        base_url=url,
        model="adversarial",
        concurrency=CONCURRENCY,
        timeout_s=delay_timeout,
        max_retries=3,
        batch_size=CONCURRENCY,
    )
    return cfg, tcfg


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.arrow")):
        h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()[:16]


def quality(work: Path, chunks: Path) -> dict:
    from data_contracts import QARecord, RejectedRecord
    from pipeline.stages.load import iter_dataset
    from pipeline.stages.synth import synthesize_corpus
    from tests.synthesis.adversarial_server import BAD, FAILURE_STRINGS, AdversarialTeacher

    synth = dict(
        tasks=["general", "extraction", "summary"],
        questions_per_doc=40,
        target_lengths=[1024, 2048, 4096],
        evidence_mode="teacher",
        teacher_free_per_length=0,
        verify_answers=True,
        closed_book_check=True,
    )
    with AdversarialTeacher(fault_timeout=2.5) as srv:
        cfg, tcfg = _configs(srv.url, 2.0, **synth)
        t0 = time.perf_counter()
        first = synthesize_corpus([chunks], work / "qa", cfg, tcfg, cache_path=work / "cache.sqlite")
        wall = time.perf_counter() - t0
        calls_before = srv.calls
        t0 = time.perf_counter()
        again = synthesize_corpus([chunks], work / "qa-rerun", cfg, tcfg, cache_path=work / "cache.sqlite")
        rerun_wall = time.perf_counter() - t0
        rerun_calls = srv.calls - calls_before
    kept = list(iter_dataset(work / "qa", QARecord))
    rejects = list(iter_dataset(work / "qa", RejectedRecord))
    questions = Counter(r.question for r in kept)
    offered = Counter(srv.labels.values())
    kept_by = Counter()
    bad_kept = []
    for r in kept:
        label = srv.labels.get(r.question, "unlabelled")
        original = srv.dup_of.get(r.question)
        dup = questions[r.question] > 1 or (original != r.question and original in questions)
        failure = any(f.lower() in (r.question + r.answer).lower() for f in FAILURE_STRINGS)
        escaped = '\\"' in r.answer or '\\"' in r.question
        # A rewording whose original was dropped (for another reason) duplicates nothing kept.
        bad = label in BAD and not (label == "reworded" and srv.dup_of.get(r.question) not in questions)
        if bad or dup or failure or escaped or label == "unlabelled":
            bad_kept.append({"class": label, "question": r.question, "answer": r.answer[:120]})
        kept_by[label] += 1
    lost = Counter()
    for j in rejects:
        try:
            raw = json.loads(j.raw or "")
            q = None if (raw["question"], raw["answer"]) in srv.exact_dups else raw["question"]
        except (ValueError, KeyError, TypeError):
            q = None
        if q is not None and srv.labels.get(q) not in BAD and srv.labels.get(q) is not None:
            lost[f"{srv.labels[q]}: {j.reason.value}"] += 1
    good_offered = sum(n for c, n in offered.items() if c not in BAD)
    good_kept = sum(n for c, n in kept_by.items() if c not in BAD and c != "unlabelled")
    lone = sum(
        1
        for r in kept
        if srv.labels.get(r.question) == "reworded" and srv.dup_of.get(r.question) not in questions
    )
    return {
        "candidates": len(kept) + len(rejects),
        "teacher_calls": first.calls,
        "server_requests": calls_before,
        "wall_s": round(wall, 1),
        "offered_by_class": dict(sorted(offered.items())),
        "kept_by_class": dict(sorted(kept_by.items())),
        "rejects_by_reason": dict(sorted(Counter(r.reason.value for r in rejects).items())),
        "kept": len(kept),
        "bad_kept": len(bad_kept),
        "reworded_kept_without_original": lone,
        "bad_kept_share": round(len(bad_kept) / max(1, len(kept)), 4),
        "bad_kept_examples": bad_kept[:10],
        "good_offered": good_offered,
        "good_kept": good_kept,
        "good_kept_share": round(good_kept / max(1, good_offered), 4),
        "good_rejected_by_class_and_reason": dict(sorted(lost.items())),
        "failure_strings_kept": sum(
            any(f.lower() in (r.question + r.answer).lower() for f in FAILURE_STRINGS) for r in kept
        ),
        "rerun_calls": rerun_calls,
        "rerun_wall_s": round(rerun_wall, 1),
        "rerun_identical_shards": _digest(work / "qa") == _digest(work / "qa-rerun"),
        "depth_bins_kept": [
            sum(1 for r in kept if min(9, int(r.evidence_depth_pct // 10)) == b) for b in range(10)
        ],
        "rerun_cache_hits": again.cache_hits,
    }


def throughput(work: Path, chunks: Path, delay: float, label: str) -> dict:
    from pipeline.stages.synth import synthesize_corpus
    from tests.synthesis.adversarial_server import AdversarialTeacher

    synth = dict(
        tasks=["general", "extraction"],
        questions_per_doc=10,
        target_lengths=[1024, 2048],
        evidence_mode="teacher",
        teacher_free_per_length=0,
        verify_answers=True,
        closed_book_check=True,
        dedup_embedder=None,
    )
    with AdversarialTeacher(mix={"good": 1}, delay=delay) as srv:
        cfg, tcfg = _configs(srv.url, 30.0, **synth)
        cache = work / f"tp-{label}-{delay}.sqlite"
        t0 = time.perf_counter()
        res = synthesize_corpus([chunks], work / f"tp-{label}-{delay}", cfg, tcfg, cache_path=cache)
        wall = time.perf_counter() - t0
        calls = srv.calls
    ideal = calls * delay / CONCURRENCY
    return {
        "code": label,
        "server_delay_s": delay,
        "concurrency": CONCURRENCY,
        "calls": calls,
        "records": sum(res.kept.values()),
        "wall_s": round(wall, 2),
        "calls_per_s": round(calls / wall, 2),
        "ideal_s": round(ideal, 2),
        "vs_ideal": round(wall / ideal, 2) if ideal else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--throughput-only", action="store_true")
    ap.add_argument("--label", default="after")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    # Imports (transformers, datasketch/scipy) cost 10-20 s on this machine: pay them before timing.
    import datasketch  # noqa: F401

    from pipeline.chat import ChatFormatter
    from pipeline.config import ChunkerConfig
    from pipeline.stages.chunk import chunk_corpus

    ChatFormatter().count("warm up")
    work = Path(tempfile.mkdtemp(prefix="lw-gates-"))
    try:
        chunks = work / "chunks"
        chunk_corpus([corpus(work)], chunks, ChunkerConfig(max_tokens=384))
        results = json.loads(OUT.read_text()) if OUT.exists() else {}
        results["machine"] = "2 cores shared with other jobs, no GPU; loopback server in the same process"
        tp = [throughput(work, chunks, d, args.label) for d in (0.0, 1.0)]
        results["throughput"] = [r for r in results.get("throughput", []) if r["code"] != args.label] + tp
        for r in tp:
            print(json.dumps(r))
        if not args.throughput_only:
            results["quality"] = quality(work, chunks)
            print(
                json.dumps(
                    {k: v for k, v in results["quality"].items() if k != "bad_kept_examples"}, indent=1
                )
            )
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(results, indent=1) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
