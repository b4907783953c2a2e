"""Render benchmarks/results/*.json into the tables of benchmarks/README.md (between markers)."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def chunkers() -> list[str]:
    data = json.loads((RESULTS / "chunkers.json").read_text())
    lines = [
        f"Machine: {data['meta']['cpus']} CPUs, {data['meta']['date']}, tokenizer {data['meta']['tokenizer']}. "
        "Throughput in k source tokens per second (wall) and per CPU-second (children included).",
        "",
    ]
    head = (
        "| corpus | size | contender | wall s | k tok/s | k tok/CPU-s | chunks | mean / p95 / max tok | "
        "% over | p95/mean | exact concat |"
    )
    lines += [head, "|" + "---|" * 11]
    for r in data["results"]:
        lines.append(
            f"| {r['corpus']} | {r['size']} | {r['contender']} | {r['wall_s']} | {r['ktok_per_s']} | "
            f"{r['ktok_per_cpu_s']} | {r['chunks']} | {r['mean_tok']:.0f} / {r['p95_tok']:.0f} / "
            f"{r['max_tok']} | {r['pct_over']} | {r['p95_over_mean']} | {r['exact_concat']} |"
        )
    return lines


def shards() -> list[str]:
    data = json.loads((RESULTS / "shards.json").read_text())
    lines = [
        "| input (records per cell) | workers | rows | tokens | wall s | k tok/s | peak RSS MB |",
        "|" + "---|" * 7,
    ]
    for r in data["results"]:
        lines.append(
            f"| {r['records_per_cell']} | {r['workers']} | {r['rows']} | {r['tokens']} | {r['wall_s']} | "
            f"{r['ktok_per_s']} | {r['peak_rss_mb']} |"
        )
    return lines


def trainer() -> list[str]:
    data = json.loads((RESULTS / "trainer_cpu.json").read_text())
    t = data["throughput_2048"]
    lines = [
        f"Packed vs padded ({t['samples']} samples, {t['real_tokens']} real tokens, small random Llama with "
        "SmolLM2's vocabulary + LoRA, forward+backward+step):",
        "",
        "| layout | wall s | real tokens/s |",
        "|---|---|---|",
        f"| isolation-packed 2048-token packs | {t['packed']['wall_s']} | {t['packed']['real_tokens_per_s']} |",
        f"| padded to longest, batch 4 | {t['padded']['wall_s']} | {t['padded']['real_tokens_per_s']} |",
        f"| **speedup** | | **{t['speedup']}x** |",
        "",
        "Pack fill (BFD) on the length distribution of a sample-corpus build:",
        "",
        "| pack length | " + " | ".join(data["pack_fill_bfd"]) + " |",
        "|---|" + "---|" * len(data["pack_fill_bfd"]),
        "| fill | " + " | ".join(str(v) for v in data["pack_fill_bfd"].values()) + " |",
        "",
        "Peak memory growth of one LoRA step (fresh process each):",
        "",
        "| tokens | peak RSS growth MB | ratio vs half the tokens |",
        "|---|---|---|",
    ]
    for r in data["memory"]:
        lines.append(f"| {r['tokens']} | {r['peak_rss_growth_mb']} | {r.get('ratio_vs_half', '')} |")
    return lines


def parallel() -> list[str]:
    data = json.loads((RESULTS / "parallel_cpu.json").read_text())
    lines = [
        f"{data['packs_per_step']} packs of {data['pack_tokens']} tokens per optimizer step, {data['model']}; "
        f"measured on {data['machine']}, torch {data['torch']}, mean of {data['timed_steps']} steps after a warm-up; "
        f"load average (1/5/15 min) at the end: {data.get('load_average_1_5_15_min_at_end')}:",
        "",
        "| layout | processes | tokens/s | peak RSS per rank MiB | step RSS growth per rank MiB |",
        "|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        lines.append(
            f"| {r['mode']} | {r['processes']} | {r['tokens_per_s']} | "
            f"{' / '.join(map(str, r['peak_rss_mib_per_rank']))} | "
            f"{' / '.join(map(str, r['step_rss_growth_mib_per_rank']))} |"
        )
    return lines


def semantic() -> list[str]:
    data = json.loads((RESULTS / "semantic_boundaries.json").read_text())
    lines = [
        f"{data['samples']} documents made of 4 topic runs each; a boundary is found when a chunk starts "
        "within 3 characters of it.",
        "",
        "| min unit tokens | embed max tokens | MiniLM run by | wall s | recall | precision | F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in data["results"]:
        lines.append(
            f"| {r['min_unit_tokens']} | {r['embed_max_tokens']} | {r.get('backend', 'torch')} | "
            f"{r['wall_s']} | {r['recall']} | "
            f"{r['precision']} | {r['f1']} |"
        )
    return lines


def training_helps() -> list[str]:
    import sys

    sys.path.insert(0, str(HERE))
    from training_helps import render

    return render(json.loads((RESULTS / "training_helps.json").read_text()))


def main() -> None:
    readme = HERE / "README.md"
    text = readme.read_text()
    sections = {
        "chunkers": (chunkers, "chunkers"),
        "semantic": (semantic, "semantic_boundaries"),
        "shards": (shards, "shards"),
        "trainer": (trainer, "trainer_cpu"),
        "parallel": (parallel, "parallel_cpu"),
        "training_helps": (training_helps, "training_helps"),
    }
    for name, (fn, result) in sections.items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if start in text and (RESULTS / f"{result}.json").exists():
            a, b = text.index(start) + len(start), text.index(end)
            text = text[:a] + "\n" + "\n".join(fn()) + "\n" + text[b:]
    readme.write_text(text)


if __name__ == "__main__":
    main()
