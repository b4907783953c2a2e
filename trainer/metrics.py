"""Per-step metrics to JSONL and TensorBoard, a progress bar, and a loss-per-stage plot."""

from __future__ import annotations

import json
from pathlib import Path


class MetricLogger:
    """Appends one JSON line per step; mirrors scalars to TensorBoard when it is installed."""

    def __init__(self, output_dir: Path, enabled: bool = True) -> None:
        self.path = output_dir / "metrics.jsonl"
        self.enabled = enabled
        self._tb = None
        if enabled:
            output_dir.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(output_dir / "tensorboard"))
            except ImportError:  # tensorboard is optional for the JSONL log
                self._tb = None

    def log(self, row: dict) -> None:
        """Record one step."""
        if not self.enabled:
            return
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for k, v in row.items():
                if isinstance(v, int | float) and k != "step":
                    self._tb.add_scalar(k, v, row["step"])

    def rows(self) -> list[dict]:
        """Every row logged so far (a resumed run keeps the rows of the first attempt)."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def close(self) -> None:
        """Flush TensorBoard."""
        if self._tb is not None:
            self._tb.close()


def plot_losses(rows: list[dict], path: Path) -> None:
    """Loss per step, coloured by curriculum stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    rows = [r for r in rows if "loss" in r]  # gate rows carry accuracies, not losses
    for stage in sorted({r["stage_length"] for r in rows}):
        pts = [(r["step"], r["loss"]) for r in rows if r["stage_length"] == stage]
        ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=f"<= {stage} tokens")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("weighted loss (answer tokens)")
    ax.set_title("training loss by curriculum stage")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
