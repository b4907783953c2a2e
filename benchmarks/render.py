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
    lines = [f"Machine: {data.get('machine', '2 CPUs, no GPU')}, {data['date']}.", ""]
    t = data.get("throughput_2048")
    if t and "padded_random" in t:
        lines += [
            f"Packed vs padded ({t['samples']} samples, {t['real_tokens']} real tokens, small random Llama "
            "with SmolLM2's vocabulary + LoRA, forward+backward+step; every layout uses the same chunked, "
            f"answer-only loss; {t['timing']} of {t['rounds']} interleaved rounds):",
            "",
            "| layout | wall s | real tokens/s | tokens computed | padding / empty share |",
            "|---|---|---|---|---|",
        ]
        names = {
            "packed": "isolation-packed 2048-token packs (lengthwise attention)",
            "padded_length_grouped": f"padded, length-grouped batches of {t['batch']}",
            "padded_random": f"padded, random batches of {t['batch']}",
        }
        for key, label in names.items():
            r = t[key]
            lines.append(
                f"| {label} | {r['wall_s']} | {r['real_tokens_per_s']} | {r['computed_tokens']} | "
                f"{r['padding_or_empty_share']} |"
            )
        lines += [
            f"| **packed vs length-grouped** | | **{t['packed_vs_padded_length_grouped']}x** | | |",
            f"| **packed vs random** | | **{t['packed_vs_padded_random']}x** | | |",
            "",
        ]
    lines += [
        "Pack fill (BFD) on the length distribution of a sample-corpus build:",
        "",
        "| pack length | " + " | ".join(data["pack_fill_bfd"]) + " |",
        "|---|" + "---|" * len(data["pack_fill_bfd"]),
        "| fill | " + " | ".join(str(v) for v in data["pack_fill_bfd"].values()) + " |",
        "",
        "Peak RSS growth of one LoRA step (fresh process each; tiny Llama, hidden 64, 2 layers, SmolLM2's "
        "vocabulary, activation checkpointing, chunked CE). Packs hold samples of <= 4096 tokens:",
        "",
        "| layout | attention | tokens | samples | peak RSS growth MB | ratio vs half the tokens | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in data.get("memory_packed", []) + data.get("memory_single", []) + data.get("memory_dense", []):
        mb = r.get("peak_rss_growth_mb", r.get("error", ""))
        lines.append(
            f"| {r.get('layout', 'single')} | {r.get('attention', 'transformers_sdpa')} | {r['tokens']} | "
            f"{r.get('samples', 1)} | {mb} | {r.get('ratio_vs_half', '')} | {r.get('wall_s', '')} |"
        )
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
