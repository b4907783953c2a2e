"""Dataset card (Hugging Face style README.md) with a length histogram for a tokenized build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from data_contracts import BuildManifest, resolve_in
from data_contracts.io import atomic_write_text, read_table
from pipeline.stages.mix import MixReport
from pipeline.stages.split import build_split

HISTOGRAM = "length_histogram.png"


def _columns(out: Path, manifest: BuildManifest) -> tuple[np.ndarray, np.ndarray]:
    lengths, depths = [], []
    for s in manifest.shards:
        if s.bucket is None:
            continue
        t = read_table(resolve_in(out, s.path)).select(["length", "evidence_depth_pct"])
        lengths.append(t["length"].to_numpy())
        depths.append(pc.cast(t["evidence_depth_pct"], "float64").to_numpy())
    if not lengths:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(lengths), np.concatenate(depths)


def plot_histogram(lengths: np.ndarray, edges: list[int], path: Path) -> None:
    """Log-scale length histogram with the bucket edges marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    if len(lengths):
        lo, hi = max(1, int(lengths.min())), int(lengths.max())
        # One length only (or a tiny range): a few bins around it; geomspace needs lo < hi.
        bins = np.geomspace(lo, hi, 40) if hi > lo * 1.05 else np.geomspace(lo / 1.1, hi * 1.1, 5)
        ax.hist(lengths, bins=bins, color="#3b7dd8", edgecolor="white")
    for e in edges:
        ax.axvline(e, color="#d62728", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("example length (student tokens, chat template included)")
    ax.set_ylabel("examples")
    ax.set_title(f"{len(lengths)} examples; dashed lines: bucket edges")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def _split_line(manifest: BuildManifest) -> str:
    cfg = json.loads(manifest.config_json)
    share, by = cfg.get("heldout_fraction") or 0, cfg.get("heldout_by", "document")
    if build_split(manifest) == "heldout":
        return f"**Held-out split** (~{share:.0%} of the records, by {by}): for evaluation only, never trained on."
    if share:
        return f"Training split: ~{share:.0%} of the records (by {by}) are held out in `heldout/` for evaluation."
    return "All records are in this build (no held-out split; set `heldout_fraction` to make one)."


def _synthesis_rejects(dropped: dict[str, int]) -> list[str]:
    return [
        "## Rejected during synthesis",
        "",
        "| reason | candidates |",
        "|---|---|",
        *[f"| {name} | {n} |" for name, n in sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0]))],
        "",
    ]


def _mix_table(manifest: BuildManifest, notes: MixReport | None) -> list[str]:
    """Rows and tokens per kind of record in each bucket, with the requested vs achieved shares."""
    rows = [(b.upper, m) for b in manifest.buckets for m in b.mix]
    if not rows or {m.kind for _, m in rows} <= {"qa"}:
        return []  # a plain QA build: the bucket table says it all
    lines = [
        "## Data mix",
        "",
        "Shares are shares of tokens (sequence length): LM share = LM / (QA + document-level + LM) tokens "
        "per bucket; replay share = replay / all tokens.",
        "",
        "| bucket (<= tokens) | kind | examples | tokens | share of bucket tokens | loss tokens |",
        "|---|---|---|---|---|---|",
    ]
    totals = {b.upper: sum(m.tokens for m in b.mix) for b in manifest.buckets}
    for upper, m in rows:
        share = m.tokens / totals[upper] if totals[upper] else 0.0
        lines.append(f"| {upper} | {m.kind} | {m.rows} | {m.tokens} | {share:.1%} | {m.loss_tokens} |")
    lines.append("")
    if notes:
        lines += [f"- {line}" for line in notes.lines]
        lines += [f"- **warning**: {w}" for w in notes.warnings]
        lines.append("")
    return lines


def write_card(
    out: Path,
    manifest: BuildManifest,
    upstream_dropped: dict[str, int] | None = None,
    mix_notes: MixReport | None = None,
) -> Path:
    """Write ``README.md`` and the histogram PNG next to the shards.

    ``upstream_dropped``: what synthesis rejected, by reason (shown so a reader sees what the gates caught).
    ``mix_notes``: requested vs achieved shares of the data mix, and warnings where a source fell short.
    """
    lengths, depths = _columns(out, manifest)
    plot_histogram(lengths, manifest.bucket_edges, out / HISTOGRAM)
    filled = [b for b in manifest.buckets if b.rows]
    # `load_dataset(folder)` needs a default config: all buckets (not the rejects, not heldout/).
    default = "  - config_name: all\n    default: true\n    data_files:\n      - split: train\n        path: len_*/*.arrow"
    configs = ([default] if filled else []) + [
        f"  - config_name: len_{b.upper}\n    data_files: len_{b.upper:06d}/*.arrow" for b in filled
    ]
    depths = depths[np.isfinite(depths)]  # imported conversations have no evidence depth
    depth_hist = np.histogram(depths, bins=10, range=(0, 100))[0] if len(depths) else np.zeros(10, int)
    lines = [
        "---",
        "license: other",
        "task_categories: [text-generation, question-answering]",
        "tags: [long-context, lengthwise]",
        "configs:",
        *configs,
        "---",
        "",
        "# lengthwise tokenized long-context dataset",
        "",
        f"{manifest.rows} examples, {manifest.tokens} tokens, tokenizer `{manifest.tokenizer}`, "
        f"built by lengthwise {manifest.lengthwise_version} (config `{manifest.config_hash}`).",
        "Load a bucket range with `data_contracts.reader.open_buckets(folder, min_length, max_length)` "
        "(memory-mapped `datasets.Dataset`, hashes and contract checked).",
        "",
        _split_line(manifest),
        "",
        f"![length histogram]({HISTOGRAM})",
        "",
        "## Buckets",
        "",
        "| bucket (<= tokens) | examples | tokens | shards |",
        "|---|---|---|---|",
        *[f"| {b.upper} | {b.rows} | {b.tokens} | {b.shards} |" for b in manifest.buckets],
        "",
        *_mix_table(manifest, mix_notes),
        "## Task types",
        "",
        "| task | examples |",
        "|---|---|",
        *[f"| {c.name} | {c.count} |" for c in manifest.task_counts],
        "",
        "## Evidence depth",
        "",
        "| depth (% of context) | " + " | ".join(f"{10 * i}-{10 * i + 10}" for i in range(10)) + " |",
        "|---|" + "---|" * 10,
        "| examples | " + " | ".join(str(int(x)) for x in depth_hist) + " |",
        "",
        "## Dropped",
        "",
        *([f"- {c.name}: {c.count}" for c in manifest.dropped] or ["- none"]),
        "",
        *(_synthesis_rejects(upstream_dropped) if upstream_dropped else []),
        "## Skipped inputs",
        "",
        *([f"- `{s.source}`: {s.reason}" for s in manifest.skipped] or ["- none"]),
        "",
        "## Build config",
        "",
        "```json",
        json.dumps(json.loads(manifest.config_json), indent=2),
        "```",
        "",
    ]
    path = out / "README.md"
    atomic_write_text(path, "\n".join(lines))
    return path
