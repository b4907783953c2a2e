"""Evaluation reports: JSON, markdown, a length x depth heatmap per model and metric-vs-length plots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainer.evaluation.runner import ModelResult


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap(result: ModelResult, path: Path) -> None:
    """Probe accuracy over (context length, evidence depth)."""
    acc = result.accuracy()
    lengths = sorted({k[0] for k in acc})
    depths = sorted({k[1] for k in acc})
    grid = np.array([[acc.get((L, d), np.nan) for L in lengths] for d in depths])
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(lengths), 1.2 + 0.5 * len(depths)), dpi=110)
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(lengths)), [str(L) for L in lengths])
    ax.set_yticks(range(len(depths)), [f"{d:g}%" for d in depths])
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("evidence depth")
    for (i, j), v in np.ndenumerate(grid):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
    ax.set_title(f"retrieval accuracy: {result.name}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _length_axis(ax, lengths: Sequence[int]) -> None:
    """Log-2 length axis with the measured lengths as plain tick labels (not 5x10^2)."""
    ax.set_xscale("log", base=2)
    if lengths:
        ax.set_xticks(list(lengths), [str(L) for L in lengths])
        ax.minorticks_off()


def metric_vs_length(results: Sequence[ModelResult], path: Path) -> None:
    """Probe accuracy (and answer-token perplexity when measured) against length, one line per model."""
    plt = _plt()
    has_ppl = any(r.perplexity for r in results)
    fig, axes = plt.subplots(
        1, 2 if has_ppl else 1, figsize=(10 if has_ppl else 5.5, 3.5), dpi=110, squeeze=False
    )
    for r in results:
        acc = r.accuracy_by_length()
        axes[0][0].plot(list(acc), list(acc.values()), marker="o", label=r.name)
        if has_ppl and r.perplexity:
            axes[0][1].plot(
                list(r.perplexity), [v["answer_ppl"] for v in r.perplexity.values()], marker="o", label=r.name
            )
    _length_axis(axes[0][0], sorted({L for r in results for L in r.accuracy_by_length()}))
    axes[0][0].set(
        xlabel="context length (tokens)",
        ylabel="probe accuracy",
        ylim=(-0.05, 1.05),
        title="retrieval probes",
    )
    axes[0][0].legend(fontsize=7)
    if has_ppl:
        _length_axis(axes[0][1], sorted({b for r in results for b in (r.perplexity or {})}))
        axes[0][1].set(
            xlabel="length bucket (tokens)",
            ylabel="answer-token perplexity",
            title="perplexity by length",
        )
        axes[0][1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(results: Sequence[ModelResult], out: Path, meta: dict) -> Path:
    """``results.json``, ``report.md`` and the plots in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "meta": meta,
        "models": [
            {
                "name": r.name,
                "probe_accuracy_by_length": r.accuracy_by_length(),
                "probe_accuracy": [
                    {"length": k[0], "depth": k[1], "accuracy": v} for k, v in r.accuracy().items()
                ],
                "perplexity": r.perplexity,
                "qa": r.qa,
                "probes": r.probes,
            }
            for r in results
        ],
    }
    (out / "results.json").write_text(json.dumps(data, indent=1, default=str))
    metric_vs_length(results, out / "metric_vs_length.png")
    lengths = sorted({L for r in results for L in r.accuracy_by_length()})
    lines = [
        "# Long-context evaluation",
        "",
        f"Probes: {meta.get('tasks')} at lengths {lengths}, depths "
        f"{meta.get('depths')}, {meta.get('per_cell')} per cell, held-out seeds, real haystacks.",
        "",
        "## Retrieval accuracy by length",
        "",
        "| model | " + " | ".join(map(str, lengths)) + " | mean |",
        "|---|" + "---|" * (len(lengths) + 1),
    ]
    for r in results:
        acc = r.accuracy_by_length()
        mean = np.mean(list(acc.values())) if acc else float("nan")
        lines.append(
            f"| {r.name} | "
            + " | ".join(f"{acc.get(L, float('nan')):.2f}" for L in lengths)
            + f" | {mean:.2f} |"
        )
    lines += ["", "![metric vs length](metric_vs_length.png)", ""]
    for i, r in enumerate(results):
        name = f"heatmap_{i}.png"
        heatmap(r, out / name)
        lines += [f"### {r.name}", "", f"![{r.name}]({name})", ""]
    if any(r.perplexity for r in results):
        lines += [
            "## Perplexity by length bucket",
            "",
            f"Rows from `{meta.get('data')}` (up to {meta.get('max_rows')} per bucket); answer = tokens with a "
            "loss weight, context = the rest. "
            + (
                "These rows are held out: no adapter trained on them."
                if meta.get("data_heldout")
                else "**These rows are not a held-out split**: adapters may have trained on them; "
                "build with `shard.heldout_fraction > 0` and evaluate on `shards/heldout`."
            ),
            "",
            "| model | bucket | answer ppl | context ppl |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r.name} | {b} | {v['answer_ppl']:.2f} | {v['context_ppl']:.2f} |"
            for r in results
            for b, v in r.perplexity.items()
        ]
        lines.append("")
    if any(r.qa for r in results):
        lines += [
            "## QA accuracy by context length",
            "",
            f"Greedy answers to QA records from `{meta.get('qa')}`"
            + (" that are in the held-out split." if meta.get("data_heldout") else "."),
            "",
            "| model | target length | EM | F1 | n |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r.name} | {b} | {v['em']:.2f} | {v['f1']:.2f} | {v['n']} |"
            for r in results
            for b, v in r.qa.items()
        ]
        lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
