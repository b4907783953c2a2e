"""Does a lengthwise curriculum improve long-context retrieval? Base vs adapter, with intervals.

SmolLM2-135M-Instruct (packaged) is trained with LoRA through a short progressive-length curriculum
on teacher-free multi-key needle records (RULER ``niah_multikey_1`` shape: 4 keys, one asked for)
whose haystacks come from the *training* documents of ``samples/corpus``. Base and adapter are then
probed with ``lengthwise eval`` on held-out probes (other seeds, haystacks from *other* documents)
at every stage length, n probes per length, accuracy with 95% Wilson intervals. Everything runs on
CPU; the JSON records the wall and CPU time of each part and the machine.

Run: ``nice -n 10 python benchmarks/training_helps.py`` (defaults sized for ~30-40 min on 2 busy
cores); ``--render`` prints the markdown table of the committed JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "benchmarks" / "results" / "training_helps.json"
CORPUS = REPO / "samples" / "corpus"
# Probe haystacks come only from these documents; training records only from the others.
HELDOUT_DOCS = ["kjv-john.txt", "license-MPL-2.0.txt", "python-howto-logging.rst", "nodejs-url.md"]


class Clock:
    """Wall and CPU seconds of a block (this process, all its threads)."""

    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = round(time.perf_counter() - self.w, 1)
        self.cpu = round(time.process_time() - self.c, 1)


def build_records(work: Path, lengths: list[int], per_length: list[int], model: str) -> Path:
    """Teacher-free multi-key needle records from the training documents, sharded by length."""
    from data_contracts import TaskType
    from pipeline.chat import ChatFormatter
    from pipeline.config import ShardConfig
    from pipeline.io.readers import read_documents
    from pipeline.stages.shard import build_shards
    from pipeline.synthesis.teacher_free import TeacherFreeGenerator

    train_docs = [p for p in sorted(CORPUS.iterdir()) if p.name not in HELDOUT_DOCS]
    docs = list(read_documents([str(p) for p in train_docs]))
    gen = TeacherFreeGenerator(docs, ChatFormatter(model))
    records = []
    for length, n in zip(lengths, per_length, strict=True):
        records += list(gen.generate([TaskType.NEEDLE_MULTIKEY], [length], n, seed=0))
    out = work / "shards"
    build_shards([], out, ShardConfig(tokenizer=model, bucket_edges=lengths), records=records)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", default="256,512,1024", help="curriculum stage lengths = probe lengths")
    ap.add_argument("--steps", default="12,8,6", help="optimizer steps per stage")
    ap.add_argument("--records", default="64,24,12", help="training records per stage length")
    ap.add_argument("--tokens-per-step", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj")
    ap.add_argument("--probes", type=int, default=50, help="probes per length (split evenly over 5 depths)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--work", default=str(REPO / "out" / "bench" / "training_helps"))
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--render", action="store_true", help="print the markdown table of --out and exit")
    args = ap.parse_args()
    if args.render:
        print("\n".join(render(json.loads(Path(args.out).read_text()))))
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging

    import torch

    from pipeline.assets import smollm2_path
    from trainer.config import LoraSettings, StageConfig, TrainConfig
    from trainer.evaluation.api import EvalConfig, evaluate
    from trainer.recipe import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    lengths = [int(x) for x in args.lengths.split(",")]
    steps = [int(x) for x in args.steps.split(",")]
    per_length = [int(x) for x in args.records.split(",")]
    depths = [0.0, 25.0, 50.0, 75.0, 100.0]
    work = Path(args.work)
    model = str(smollm2_path())
    with Clock() as t_data:
        shards = build_records(work, lengths, per_length, model)
    cfg = TrainConfig(
        model=model,
        data=str(shards),
        output_dir=str(work / "train"),
        stages=[StageConfig(max_length=L, steps=s, lr=args.lr) for L, s in zip(lengths, steps, strict=True)],
        tokens_per_step=args.tokens_per_step,
        lora=LoraSettings(r=args.rank, alpha=2 * args.rank, targets=args.targets.split(",")),
        checkpoint_every=1000,
        isolation_check=False,
        precision="fp32",
    )
    with Clock() as t_train:
        summary = train(cfg)
    out = Path(args.out)
    data = {
        "meta": {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{os.cpu_count()} CPUs ({platform.machine()}), no GPU, shared with other jobs, nice 10",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "model": "SmolLM2-135M-Instruct (packaged GGUF -> fp32 safetensors)",
            "task": "niah_multikey (4 keys, 1 asked; teacher-free records and probes)",
            "train_docs": "samples/corpus minus " + ", ".join(HELDOUT_DOCS),
            "probe_docs": ", ".join(HELDOUT_DOCS),
            "args": vars(args),
        },
        "train": {
            "stages": summary.get("stages"),
            "first_loss": summary.get("first_loss"),
            "last_loss": summary.get("last_loss"),
            "wall_s": t_train.wall,
            "cpu_s": t_train.cpu,
        },
        "data_wall_s": t_data.wall,
        "eval": {"wall_s": 0.0, "cpu_s": 0.0, "probes_per_model": 0},
        "results": [],
        "complete": False,
    }
    # Longest length first: the stage that matters most is measured even if the run is cut short;
    # the JSON is rewritten after every length.
    for length in sorted(lengths, reverse=True):
        ev = EvalConfig(
            model=model,
            adapters=[str(work / "train" / "adapter")],
            haystack=[str(CORPUS / d) for d in HELDOUT_DOCS],
            lengths=[length],
            depths=depths,
            tasks=["niah_multikey"],
            per_cell=max(1, args.probes // len(depths)),
            min_per_cell=args.probes,
            batch_size=args.batch_size,
            out=str(work / f"eval-{length}"),
            progress_every_s=60,
        )
        with Clock() as t_eval:
            result = evaluate(ev)
        cell = {m["name"]: m["probe_accuracy_by_length"][str(length)] for m in result["models"]}
        verdict = next(c["verdict"] for c in result["comparisons"] if c["length"] == length)
        data["results"].append(
            {"length": length, "base": cell["base"], "adapter": cell["adapter"], "verdict": verdict}
        )
        data["results"].sort(key=lambda r: r["length"])
        data["eval"]["wall_s"] = round(data["eval"]["wall_s"] + t_eval.wall, 1)
        data["eval"]["cpu_s"] = round(data["eval"]["cpu_s"] + t_eval.cpu, 1)
        data["eval"]["probes_per_model"] += result["meta"]["n_probes"]
        data["complete"] = len(data["results"]) == len(lengths)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=1))
        print("\n".join(render(data)), flush=True)


def render(data: dict) -> list[str]:
    """Markdown table: accuracy [95% Wilson interval] per length for base and adapter, and the verdict."""

    def cell(a: dict) -> str:
        return f"{a['accuracy']:.2f} [{a['lo']:.2f}, {a['hi']:.2f}] ({a['k']}/{a['n']})"

    a = data["meta"]["args"]
    lines = [
        f"{data['meta']['machine']}, {data['meta']['date']}. Curriculum {a['lengths']} tokens, steps {a['steps']}, "
        f"{a['tokens_per_step']} tokens/step, LoRA r={a['rank']} on {a['targets']}, lr {a['lr']}. "
        f"Train {data['train']['wall_s'] / 60:.1f} min wall ({data['train']['cpu_s'] / 60:.1f} CPU-min), "
        f"eval of both models {data['eval']['wall_s'] / 60:.1f} min wall ({data['eval']['cpu_s'] / 60:.1f} CPU-min)"
        + (
            "."
            if data.get("complete", True)
            else "; **incomplete run: only the lengths below were measured**."
        ),
        "",
        "| length | base | adapter | verdict (95% intervals) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['length']} | {cell(r['base'])} | {cell(r['adapter'])} | {r['verdict']} |"
        for r in data["results"]
    ]
    return lines


if __name__ == "__main__":
    main()
