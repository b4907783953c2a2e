"""Tokenized shards in the columns the Hugging Face ecosystem trains on (TRL, axolotl, plain Trainer).

``input_ids``; ``labels`` = the token where its loss weight is > 0, else -100 (the model shifts, as
lengthwise does: ``loss_weights[i]`` weighs the prediction of token ``i``); ``attention_mask`` (ones)
and ``position_ids`` (0..n-1 per row, for padding-free packing). Written as Parquet with a README whose
``configs:`` block makes ``datasets.load_dataset(folder)`` return the train (and held-out ``test``) split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data_contracts.io import atomic_folder
from pipeline.errors import InputError
from pipeline.stages.split import HELDOUT_DIR

MARKER = "lengthwise_export.json"
IGNORE = -100
KEEP = ["example_id", "task_type", "length", "bucket"]


def hf_columns(table: pa.Table) -> pa.Table:
    """``input_ids``, ``labels``, ``attention_mask``, ``position_ids`` (+ ids, task, length, bucket)."""
    ids = table["input_ids"].combine_chunks()
    weights = table["loss_weights"].combine_chunks()
    lengths = pc.list_value_length(ids).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    flat_ids = pc.list_flatten(ids).to_numpy(zero_copy_only=False)
    flat_w = pc.list_flatten(weights).to_numpy(zero_copy_only=False)
    labels = np.where(flat_w > 0, flat_ids, IGNORE).astype(np.int32)
    starts = np.repeat(offsets.to_numpy()[:-1], lengths)
    positions = (np.arange(len(flat_ids)) - starts).astype(np.int32)

    def lists(values: np.ndarray) -> pa.ListArray:
        return pa.ListArray.from_arrays(offsets, pa.array(values))

    cols = {
        "input_ids": lists(flat_ids.astype(np.int32)),
        "labels": lists(labels),
        "attention_mask": lists(np.ones(len(flat_ids), dtype=np.int8)),
        "position_ids": lists(positions),
        **{k: table[k] for k in KEEP},
    }
    return pa.table(cols)


@dataclass
class ShardExport:
    """What :func:`export_shards` wrote."""

    out_dir: Path
    rows: dict[str, int] = field(default_factory=dict)  # split -> rows
    files: list[str] = field(default_factory=list)
    nonbinary_tokens: int = 0  # tokens whose weight was neither 0 nor 1 (labels cannot carry it)

    def lines(self) -> list[str]:
        """A short summary for the CLI."""
        out = [f"wrote {self.out_dir}: " + ", ".join(f"{k} {v} rows" for k, v in self.rows.items())]
        out.append(f"  load with datasets.load_dataset({str(self.out_dir)!r})")
        if self.nonbinary_tokens:
            out.append(
                f"  note: {self.nonbinary_tokens} tokens had loss weights other than 0 or 1 (e.g. context_weight); "
                "labels train them at full weight, since TRL has no per-token weights"
            )
        return out


def _write_split(
    root: Path, split: str, tmp: Path, lo: int, hi: int | None, result: ShardExport
) -> list[int]:
    import pyarrow.parquet as pq

    from data_contracts.reader import open_buckets, read_manifest

    buckets = sorted({s.bucket for s in read_manifest(root).shards if s.bucket is not None})
    done = []
    for b in buckets:
        if b <= lo or (hi is not None and b > hi):
            continue
        table = open_buckets(root, b - 1, b).data.table  # hashes and contract verified
        w = pc.list_flatten(table["loss_weights"])
        result.nonbinary_tokens += int(pc.sum(pc.and_(pc.not_equal(w, 0), pc.not_equal(w, 1))).as_py() or 0)
        name = f"data/{split}-len_{b:06d}.parquet"
        (tmp / "data").mkdir(exist_ok=True)
        with pq.ParquetWriter(tmp / name, hf_columns(table.slice(0, 0)).schema) as writer:
            for start in range(0, table.num_rows, 256):  # bounded memory however large the bucket
                writer.write_table(hf_columns(table.slice(start, 256)))
        result.files.append(name)
        result.rows[split] = result.rows.get(split, 0) + table.num_rows
        done.append(b)
    return done


def _readme(splits: dict[str, list[int]], source: Path) -> str:
    yaml = ["---", "configs:", "  - config_name: default", "    default: true", "    data_files:"]
    for split in splits:
        yaml += [f"      - split: {split}", f"        path: data/{split}-*.parquet"]
    for b in splits.get("train", []):
        yaml += [
            f"  - config_name: len_{b}",
            "    data_files:",
            "      - split: train",
            f"        path: data/train-len_{b:06d}.parquet",
        ]
    body = [
        "---",
        "",
        "# lengthwise shards for TRL / transformers",
        "",
        f"Exported from `{source}` by `lengthwise export-shards`. Columns: `input_ids`, `labels` (-100 where "
        "lengthwise's loss weight is 0), `attention_mask`, `position_ids`, plus `example_id`, `task_type`, "
        "`length`, `bucket`.",
        "",
        "```python",
        "from datasets import load_dataset",
        "from trl import SFTConfig, SFTTrainer",
        "",
        'ds = load_dataset("THIS_FOLDER")  # or load_dataset("THIS_FOLDER", "len_1024") for one bucket',
        "args = SFTConfig(packing=True, max_length=4096, padding_free=True)  # isolated packed samples",
        'trainer = SFTTrainer(model=MODEL, args=args, train_dataset=ds["train"])',
        "```",
        "",
    ]
    return "\n".join(yaml + body)


def export_shards(
    shards: str | Path, out: str | Path, min_length: int = 0, max_length: int | None = None
) -> ShardExport:
    """Write ``shards`` (and ``shards/heldout`` as split ``test``) as Parquet with labels, atomically."""
    root, out = Path(shards), Path(out)
    if not (root / "manifest.json").exists():
        raise InputError(f"{root}: no manifest.json; give a folder written by `lengthwise shard`")
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise InputError(f"{out} exists and is not a lengthwise export; choose another --out or delete it")
    result = ShardExport(out)
    with atomic_folder(out) as tmp:
        splits = {"train": _write_split(root, "train", tmp, min_length, max_length, result)}
        if (root / HELDOUT_DIR / "manifest.json").exists():
            splits["test"] = _write_split(root / HELDOUT_DIR, "test", tmp, min_length, max_length, result)
        splits = {k: v for k, v in splits.items() if v}
        if not splits:
            raise InputError(f"{root}: no shards with buckets in ({min_length}, {max_length}]")
        (tmp / "README.md").write_text(_readme(splits, root))
        (tmp / MARKER).write_text(json.dumps({"source": str(root.resolve()), "rows": result.rows}, indent=2))
    return result
