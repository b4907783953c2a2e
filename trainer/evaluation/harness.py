"""Optional backend: lm-evaluation-harness tasks on the base model and on each adapter.

``lm_eval`` is not a dependency: without it the run goes on and the report says how to get it.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

log = logging.getLogger(__name__)
MISSING = "lm-evaluation-harness is not installed (pip install 'lm-eval[hf]'); its tasks were skipped"


def run_lm_eval(base: str, candidates: list[tuple[str, str | None]], cfg, device: str) -> dict:
    """``{"tasks": [...], "models": {name: {task: metrics}}}``, or ``{"skipped": reason}``."""
    if importlib.util.find_spec("lm_eval") is None:
        log.warning(MISSING)
        return {"skipped": MISSING, "tasks": cfg.lm_eval_tasks}
    import lm_eval

    out: dict = {"tasks": cfg.lm_eval_tasks, "models": {}}
    for name, adapter in candidates:
        args = f"pretrained={base},device={device},dtype={'bfloat16' if device.startswith('cuda') else 'float32'}"
        if adapter is not None:
            args += f",peft={Path(adapter)}"
        log.info("lm-evaluation-harness: %s on %s", ",".join(cfg.lm_eval_tasks), name)
        res = lm_eval.simple_evaluate(
            model="hf",
            model_args=args,
            tasks=list(cfg.lm_eval_tasks),
            limit=cfg.lm_eval_limit,
            batch_size=cfg.batch_size,
        )
        out["models"][name] = {
            task: {k: v for k, v in metrics.items() if isinstance(v, int | float)}
            for task, metrics in (res or {}).get("results", {}).items()
        }
    return out
