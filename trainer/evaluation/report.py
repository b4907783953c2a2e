"""Evaluation reports: JSON, RULER-style JSON, markdown with intervals, plots.

One heatmap per task (cells annotated with accuracy and n), accuracy vs length with error bars.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainer.evaluation import ruler
from trainer.evaluation.runner import ModelResult
from trainer.evaluation.stats import compare

log = logging.getLogger(__name__)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _tasks(results: Sequence[ModelResult]) -> list[str]:
    return list(dict.fromkeys(p["task"] for r in results for p in r.probes))


def _lengths(results: Sequence[ModelResult], task: str | None = None) -> list[int]:
    return sorted({p["length"] for r in results for p in r.probes if task is None or p["task"] == task})


def _depth_label(d: float | None) -> str:
    return "all" if d is None else f"{d:g}%"


def heatmap(results: Sequence[ModelResult], task: str, path: Path) -> None:
    """Accuracy over (context length, evidence depth) for one task, one panel per model.

    Every cell shows its accuracy and n.
    """
    lengths = _lengths(results, task)
    depths = sorted(
        {p["depth"] for r in results for p in r.probes if p["task"] == task}, key=lambda d: (d is not None, d)
    )
    plt = _plt()
    fig, axes = plt.subplots(
        1,
        len(results),
        figsize=(0.4 + (1.0 + 0.9 * len(lengths)) * len(results), 1.4 + 0.5 * len(depths)),
        dpi=110,
        squeeze=False,
    )
    im = None
    for ax, r in zip(axes[0], results, strict=True):
        cells = r.cells()
        grid = np.full((len(depths), len(lengths)), np.nan)
        for i, d in enumerate(depths):
            for j, L in enumerate(lengths):
                a = cells.get((task, L, d))
                if a is not None and a.n:
                    grid[i, j] = a.value
                    ax.text(j, i, f"{a.value:.2f}\nn={a.n}", ha="center", va="center", fontsize=7)
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
        ax.set_xticks(range(len(lengths)), [str(L) for L in lengths])
        ax.set_yticks(range(len(depths)), [_depth_label(d) for d in depths])
        ax.set_xlabel("context length (tokens)", fontsize=8)
        ax.set_title(f"{task}: {r.name}", fontsize=9)
    axes[0][0].set_ylabel("evidence depth")
    if im is not None:
        bar = fig.colorbar(im, ax=list(axes[0]), fraction=0.03)
        bar.set_label("accuracy (cells: accuracy, n probes)", fontsize=7)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def _length_axis(ax, lengths: Sequence[int]) -> None:
    """Log-2 length axis with the measured lengths as plain tick labels (not 5x10^2)."""
    ax.set_xscale("log", base=2)
    if lengths:
        ax.set_xticks(list(lengths), [str(L) for L in lengths])
        ax.minorticks_off()


def metric_vs_length(results: Sequence[ModelResult], path: Path, confidence: float = 0.95) -> None:
    """Accuracy against length with Wilson error bars, one panel per task and one line per model.

    Lines are nudged sideways so overlapping intervals stay visible; perplexity when measured.
    """
    plt = _plt()
    tasks = _tasks(results)
    has_ppl = any(r.perplexity for r in results)
    panels = len(tasks) + has_ppl
    fig, axes = plt.subplots(1, max(1, panels), figsize=(4.2 * max(1, panels), 3.4), dpi=110, squeeze=False)
    for t, task in enumerate(tasks):
        ax = axes[0][t]
        for m, r in enumerate(results):
            acc = {L: a for (tk, L), a in r.by_length().items() if tk == task}
            if not acc:
                continue
            xs = np.array(list(acc)) * 2 ** (0.04 * (m - (len(results) - 1) / 2))
            ys = np.array([a.value for a in acc.values()])
            lo = np.array([a.interval[0] for a in acc.values()])
            hi = np.array([a.interval[1] for a in acc.values()])
            ax.errorbar(xs, ys, yerr=[ys - lo, hi - ys], marker="o", capsize=3, label=r.name)
        _length_axis(ax, _lengths(results, task))
        ax.set(xlabel="context length (tokens)", ylabel="accuracy", ylim=(-0.05, 1.05), title=task)
        ax.legend(fontsize=7)
    if has_ppl:
        ax = axes[0][len(tasks)]
        for r in results:
            if r.perplexity:
                ax.plot(
                    list(r.perplexity),
                    [v["answer_ppl"] for v in r.perplexity.values()],
                    marker="o",
                    label=r.name,
                )
        _length_axis(ax, sorted({b for r in results for b in (r.perplexity or {})}))
        ax.set(
            xlabel="length bucket (tokens)", ylabel="answer-token perplexity", title="perplexity by length"
        )
        ax.legend(fontsize=7)
    fig.suptitle(f"error bars: {confidence:.0%} Wilson intervals", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def comparisons(results: Sequence[ModelResult], reference: str = "base") -> list[dict]:
    """Every other model against ``reference`` per (task, length): better, worse or not different."""
    ref = next((r for r in results if r.name == reference), None)
    if ref is None:
        return []
    ref_acc = ref.by_length()
    rows = []
    for r in results:
        if r is ref:
            continue
        for key, a in r.by_length().items():
            if key in ref_acc:
                rows.append(
                    {
                        "task": key[0],
                        "length": key[1],
                        "model": r.name,
                        "reference": reference,
                        "verdict": compare(a, ref_acc[key]),
                        "model_acc": str(a),
                        "reference_acc": str(ref_acc[key]),
                    }
                )
    return rows


def small_cells(results: Sequence[ModelResult], minimum: int) -> list[tuple[str, int, int]]:
    """(task, length, n) results of any model measured on fewer than ``minimum`` probes."""
    small: dict[tuple[str, int], int] = {}
    for r in results:
        for (t, L), a in r.by_length().items():
            if a.n < minimum:
                small[(t, L)] = min(a.n, small.get((t, L), a.n))
    return [(t, L, n) for (t, L), n in sorted(small.items())]


def _accuracy_rows(r: ModelResult) -> list[dict]:
    rows = [{"task": t, "length": L, "depth": d, **a.to_dict()} for (t, L, d), a in r.cells().items()]
    rows += [
        {"task": t, "length": L, "depth": None, "pooled": True, **a.to_dict()}
        for (t, L), a in r.by_length().items()
    ]
    return rows


def _model_json(r: ModelResult) -> dict:
    return {
        "name": r.name,
        "probe_accuracy_by_length": {str(L): a.to_dict() for L, a in r.pooled_by_length().items()},
        "accuracy": _accuracy_rows(r),
        "perplexity": r.perplexity,
        "qa": r.qa,
        "probes": r.probes,
    }


def _table(results: Sequence[ModelResult], task: str, lengths: list[int]) -> list[str]:
    lines = ["| model | " + " | ".join(map(str, lengths)) + " |", "|---|" + "---|" * len(lengths)]
    for r in results:
        acc = {L: a for (t, L), a in r.by_length().items() if t == task}
        lines.append(f"| {r.name} | " + " | ".join(str(acc[L]) if L in acc else "-" for L in lengths) + " |")
    return lines


def write_report(results: Sequence[ModelResult], out: Path, meta: dict) -> Path:
    """``results.json``, ``ruler.json``, ``report.md`` and the plots in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    confidence = float(meta.get("confidence", 0.95))
    minimum = int(meta.get("min_per_cell", 10))
    lengths = _lengths(results)
    compared = comparisons(results)
    small = small_cells(results, minimum)
    data = {"meta": meta, "comparisons": compared, "models": [_model_json(r) for r in results]}
    (out / "results.json").write_text(json.dumps(data, indent=1, default=str))
    ruler_json = ruler.summary(results, lengths)
    ruler_json["meta"] = {k: meta.get(k) for k in ("base_model", "lengths", "depths", "per_cell")}
    (out / "ruler.json").write_text(json.dumps(ruler_json, indent=1))
    metric_vs_length(results, out / "metric_vs_length.png", confidence)
    lines = [
        "# Long-context evaluation",
        "",
        f"Probes: {', '.join(meta.get('tasks') or _tasks(results))} at lengths {lengths}, depths "
        f"{meta.get('depths')}, {meta.get('per_cell')} per cell, held-out seeds, real haystacks. "
        f"Each accuracy is shown as `accuracy [{confidence:.0%} Wilson interval] n=probes`.",
        "",
    ]
    if small:
        warn = (
            f"**Warning: {len(small)} result(s) rest on fewer than {minimum} probes** ("
            + ", ".join(f"{t} @ {L}: n={n}" for t, L, n in small)
            + "): their intervals are wide; raise `per_cell` or add `depths`."
        )
        log.warning(warn.replace("**", ""))
        lines += [warn, ""]
    lines += ["## Accuracy by length", ""]
    for task in _tasks(results):
        lines += [f"### {task}", "", *_table(results, task, _lengths(results, task)), ""]
    if compared:
        lines += [
            "## Compared with the base model",
            "",
            "`not different` means the two intervals overlap: the probes cannot tell the models apart.",
            "",
            "| task | length | model | verdict | its accuracy | base accuracy |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {c['task']} | {c['length']} | {c['model']} | {c['verdict']} | {c['model_acc']} | {c['reference_acc']} |"
            for c in compared
        ]
        lines.append("")
    lines += ["![accuracy vs length](metric_vs_length.png)", "", "## Heatmaps", ""]
    for task in _tasks(results):
        name = f"heatmap_{task}.png"
        heatmap(results, task, out / name)
        lines += [f"![{task}]({name})", ""]
    lines += [
        "RULER-style scores (RULER's own metrics: string_match_all, string_match_part for QA; 0-100) "
        "are in `ruler.json`.",
        "",
    ]
    lines += _perplexity_section(results, meta) + _qa_section(results, meta) + _lm_eval_section(meta)
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _perplexity_section(results: Sequence[ModelResult], meta: dict) -> list[str]:
    if not any(r.perplexity for r in results):
        return []
    lines = [
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
    return [*lines, ""]


def _qa_section(results: Sequence[ModelResult], meta: dict) -> list[str]:
    if not any(r.qa for r in results):
        return []
    lines = [
        "## QA by context length",
        "",
        f"Greedy answers to QA records from `{meta.get('qa')}`"
        + (" that are in the held-out split" if meta.get("data_heldout") else "")
        + "; accuracy above counts a reply that contains the reference answer (RULER's string_match_part).",
        "",
        "| model | target length | EM | F1 | n |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.name} | {b} | {v['em']:.2f} | {v['f1']:.2f} | {v['n']} |"
        for r in results
        for b, v in r.qa.items()
    ]
    return [*lines, ""]


def _lm_eval_section(meta: dict) -> list[str]:
    info = meta.get("lm_eval")
    if not info:
        return []
    if "skipped" in info:
        return ["## lm-evaluation-harness", "", f"Skipped: {info['skipped']}.", ""]
    lines = ["## lm-evaluation-harness", "", "| model | task | metric | value |", "|---|---|---|---|"]
    for name, tasks in info.get("models", {}).items():
        for task, metrics in tasks.items():
            lines += [f"| {name} | {task} | {k} | {v:.4f} |" for k, v in metrics.items()]
    return [*lines, ""]
