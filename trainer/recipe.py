"""The training recipe: setup -> stages -> cleanup. Read top to bottom; no framework.

Progressive length: each stage packs the samples that fit its length (best-fit decreasing, packs
shuffled), keeps tokens per optimizer step near a constant target, and trains LoRA with per-step
sum/sum loss normalisation. Sample boundaries travel with each pack to the attention
(trainer/attention.py); RoPE stages compose with the model's own scaling (trainer/rope.py). A deterministic plan plus checkpoints of adapter, optimizer, scheduler, RNG and the
(stage, step) cursor make a killed run resume with the same per-step losses.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data_contracts import content_hash
from data_contracts.reader import open_buckets, read_manifest
from pipeline.assets import public_model_name
from pipeline.fingerprint import check_shards_tokenizer
from trainer import checkpoint, distributed, isolation, parallel
from trainer import rope as rope_utils
from trainer.batch import collate, step_totals
from trainer.config import TrainConfig, data_problems
from trainer.loss import adalora_orthogonal_penalty
from trainer.metrics import MetricLogger, plot_losses
from trainer.model import add_lora, enable_checkpointing, load_base
from trainer.plan import StagePlan, plan_stage
from trainer.runinfo import write_run_info

log = logging.getLogger(__name__)


class Rows:
    """Zero-copy access to token ids and loss weights of the memory-mapped shards."""

    def __init__(self, dataset) -> None:
        table = dataset.data.table
        self.ids, self.weights = table["input_ids"], table["loss_weights"]
        self.lengths = table["length"].to_numpy()

    def sample(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(input_ids, loss_weights)`` of row ``i``."""
        return self.ids[i].values.to_numpy(), self.weights[i].values.to_numpy()


@dataclass
class Run:
    """Everything ``setup`` builds."""

    cfg: TrainConfig
    world: distributed.World
    rows: Rows
    plans: list[StagePlan]
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    state: checkpoint.TrainState
    metrics: MetricLogger
    output: Path
    base_path: str
    par: parallel.Parallel
    ropes: list[rope_utils.RopeState]  # RoPE in force at each stage
    base_rope: rope_utils.RopeState
    too_long: int = 0  # rows longer than the last stage: never trained, counted


def config_hash(cfg: TrainConfig) -> str:
    """What makes two runs the same run (logging and checkpoint cadence do not)."""
    return content_hash(
        cfg.model_dump(
            mode="json",
            exclude={
                "checkpoint_every",
                "keep_checkpoints",
                "log_every",
                "output_dir",
                "launcher",
                "nproc_per_node",
            },
        )
    )


def lr_schedule(plans: list[StagePlan], cfg: TrainConfig):
    """Learning rate at each global step: per-stage warmup then cosine decay to 10%."""
    table = []
    for plan, stage in zip(plans, cfg.stages, strict=True):
        n = len(plan.steps)
        for s in range(n):
            warm = min(1.0, (s + 1) / stage.warmup_steps) if stage.warmup_steps else 1.0
            progress = max(0.0, (s - stage.warmup_steps) / max(1, n - stage.warmup_steps))
            table.append(stage.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))))
    return lambda g: table[min(g, len(table) - 1)]


def setup(cfg: TrainConfig) -> Run:
    """Data, plan, model with LoRA, optimizer; resume from the latest checkpoint when there is one."""
    if not cfg.data:
        from pipeline.errors import ConfigError

        raise ConfigError(["data: the folder written by `lengthwise shard` is required"], "train")
    problems = data_problems(cfg)
    if problems:
        from pipeline.errors import ConfigError

        raise ConfigError(problems, "train")
    check_shards_tokenizer(cfg.data, cfg.model, "train")  # before any model is loaded
    world = distributed.init()
    parallel.check(cfg, world)
    torch.manual_seed(cfg.seed)  # the same model and adapter init on every rank
    output = Path(cfg.output_dir)
    rows, too_long = load_rows(cfg)
    plans, prev = [], 0
    for i, stage in enumerate(cfg.stages):
        slots = world.size // cfg.parallel.sequence  # data-parallel slots share out the packs
        plans.append(plan_stage(i, rows.lengths, stage, prev, cfg.step_tokens, slots, cfg.seed))
        prev = stage.max_length
        log.info(
            "stage %d (<= %d tokens): %d samples, %d packs/step (%d tokens/step, target %d), %d steps",
            i, stage.max_length, plans[-1].samples, plans[-1].packs_per_step, plans[-1].tokens_per_step,
            cfg.step_tokens, len(plans[-1].steps),
        )
    if too_long:
        log.warning("%d rows are longer than the last stage (%d tokens) and are not trained on",
                    too_long, cfg.stages[-1].max_length)
    model, base_path = load_base(cfg, world.device)
    base_rope = rope_utils.base_state(model.config)
    ropes = rope_utils.plan_ropes(base_rope, cfg.stages, cfg.auto_rope)
    model = add_lora(model, cfg.lora, sum(len(p.steps) for p in plans))
    # Saved adapters name the base as the user did (hub ID or folder), not lengthwise's cache path.
    model.peft_config["default"].base_model_name_or_path = public_model_name(cfg.model)
    if world.main:
        write_run_info(cfg, base_path, output)
    if cfg.gradient_checkpointing:
        enable_checkpointing(model, offload=cfg.offload_activations and world.device.type == "cuda")
    else:
        model.train()
    par = parallel.wrap(model, cfg, world, lambda: _autocast(cfg, world.device))
    parallel.seed_rank(cfg.seed, world)
    optimizer = torch.optim.AdamW(parallel.trainable(par), lr=1.0, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(plans, cfg))
    metrics = MetricLogger(output, enabled=world.main)
    state = checkpoint.TrainState(config_hash=config_hash(cfg))
    run = Run(
        cfg, world, rows, plans, model, optimizer, scheduler, state, metrics, output, base_path, par,
        ropes, base_rope, too_long,
    )
    resume(run)
    return run


def load_rows(cfg: TrainConfig) -> tuple[Rows, int]:
    """Rows of every bucket a stage can use, and the count of rows longer than the last stage."""
    last = cfg.stages[-1].max_length
    manifest = read_manifest(cfg.data)
    edge = min((e for e in manifest.bucket_edges if e >= last), default=None)
    rows = Rows(open_buckets(cfg.data, 0, edge))
    above = sum(b.rows for b in manifest.buckets if edge is not None and b.upper > edge)
    return rows, int((rows.lengths > last).sum()) + above


def resume(run: Run) -> None:
    """Continue from the newest checkpoint of the same run; refuse one from a different config."""
    path = checkpoint.latest(run.output)
    if path is None:
        return
    saved = json.loads((path / "state.json").read_text())
    if saved["config_hash"] != run.state.config_hash:
        raise RuntimeError(
            f"{path} belongs to a different training config; use a new output_dir or delete it"
        )
    run.state = checkpoint.restore(path, run.par, run.optimizer, run.scheduler)
    if run.world.main:  # drop log rows of steps that will run again
        kept = [r for r in run.metrics.rows() if r["step"] <= run.state.global_step]
        run.metrics.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    log.info("resumed from %s at stage %d step %d", path, run.state.stage, run.state.step)


def check_isolation(run: Run) -> dict:
    """Prove packed samples do not see each other on a two-sample pack (see ``trainer.isolation``)."""
    first = [i for pack in run.plans[0].steps[0] for i in pack]
    candidates = [run.rows.sample(i)[0] for i in first[:2]]
    vocab = run.model.get_input_embeddings().weight.shape[0]
    samples = isolation.two_samples(candidates, run.plans[0].max_length, vocab, run.cfg.seed)
    return isolation.prove_isolation(run.model, samples, run.world.device)


def _autocast(cfg: TrainConfig, device: torch.device):
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(run: Run, plan: StagePlan, step: int) -> tuple[float, int]:
    """One optimizer step over this rank's packs; returns (global step loss, global tokens)."""
    cfg, world, par = run.cfg, run.world, run.par
    every = [run.rows.sample(i)[1] for pack in plan.steps[step] for i in pack]
    n_seqs, weight_sum = step_totals(every)  # over all packs of all ranks: exact sum/sum normalisation
    run.optimizer.zero_grad(set_to_none=True)
    loss_sum, tokens = 0.0, 0
    mine = plan.packs_for(step, par.dp_rank, par.dp_size)
    for k, pack in enumerate(mine):
        batch = collate([run.rows.sample(i) for i in pack], cfg.loss_norm, n_seqs, weight_sum)
        loss, n = parallel.forward_backward(par, batch, last=k == len(mine) - 1)
        loss_sum += loss
        tokens += n
    if cfg.lora.adalora and not (par.data == "fsdp" and world.size > 1):
        # Same parameters on every rank: each adds the whole regulariser gradient after the reduction.
        penalty = adalora_orthogonal_penalty(run.model)
        if penalty is not None:
            penalty.backward()
            loss_sum += float(penalty.detach()) / world.size
    if cfg.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(parallel.trainable(par), cfg.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    if cfg.lora.adalora:
        run.model.base_model.update_and_allocate(run.state.global_step)
    return distributed.sum_scalar(loss_sum, world), int(distributed.sum_scalar(tokens, world))


def train_stage(run: Run, plan: StagePlan, stop_at: int | None = None) -> bool:
    """Run the remaining steps of one stage; returns False if stopped early at global step ``stop_at``."""
    from tqdm import tqdm

    cfg, state = run.cfg, run.state
    first = state.step if state.stage == plan.index else 0
    bar = tqdm(
        range(first, len(plan.steps)),
        desc=f"stage {plan.index} (<= {plan.max_length})",
        disable=not run.world.main,
        mininterval=2.0,
        initial=first,
        total=len(plan.steps),
    )
    for step in bar:
        t0 = time.perf_counter()
        lr = run.scheduler.get_last_lr()[0]  # the rate this step uses (the scheduler moves on inside)
        loss, tokens = train_step(run, plan, step)
        state.global_step += 1
        state.step, state.stage = step + 1, plan.index
        state.tokens_seen += tokens
        state.losses.append(loss)
        row = {
            "step": state.global_step,
            "stage": plan.index,
            "stage_length": plan.max_length,
            "loss": loss,
            "lr": lr,
            "tokens": tokens,
            "tokens_per_s": tokens / (time.perf_counter() - t0),
            "pack_fill": plan.fill,
        }
        if state.global_step % cfg.log_every == 0:
            run.metrics.log(row)
        bar.set_postfix(loss=f"{loss:.4f}")
        last = step + 1 == len(plan.steps)
        if last:  # adapter and gate first: a checkpoint that says "next stage" means this one is done
            finish_stage(run, plan)
        if state.global_step % cfg.checkpoint_every == 0 or last:
            checkpoint.save(run.output, state, run.par, run.optimizer, run.scheduler, cfg.keep_checkpoints)
        distributed.barrier(run.world)
        if stop_at is not None and state.global_step >= stop_at:
            return False
    if not plan.steps:
        finish_stage(run, plan)
    return True


def finish_stage(run: Run, plan: StagePlan) -> None:
    """Save the stage adapter, run its gate, then move the cursor to the next stage."""
    parallel.save_adapter(
        run.par,
        run.output / "stages" / f"stage-{plan.index}-{plan.max_length}",
        run.ropes[plan.index],
        run.base_rope,
    )
    parallel.on_whole_model(run.par, lambda _: gate(run, plan))
    run.state.stage, run.state.step = plan.index + 1, 0


class StageGateFailed(RuntimeError):
    """The model did not reach the required probe accuracy at a stage's length."""


def gate(run: Run, plan: StagePlan) -> None:
    """Optional promotion check: passkey accuracy at the stage length must reach the configured minimum."""
    need = run.cfg.stages[plan.index].gate_min_accuracy
    if need is None:
        return
    from pipeline.chat import ChatFormatter
    from trainer.evaluation.api import gate_accuracy

    run.model.eval()
    result = gate_accuracy(run.model, ChatFormatter(run.base_path), run.cfg.gate_haystack, plan.max_length)
    run.model.train()
    acc = result.value
    if run.world.main:
        run.metrics.log(
            {
                "step": run.state.global_step,
                "stage": plan.index,
                "stage_length": plan.max_length,
                "gate_accuracy": acc,
                "gate_lo": result.interval[0],
                "gate_hi": result.interval[1],
                "gate_probes": result.n,
            }
        )
    if acc < need:
        raise StageGateFailed(
            f"stage {plan.index} (<= {plan.max_length} tokens): passkey accuracy {result} < "
            f"required {need:.2f}; the adapter so far is in {run.output / 'stages'}. Train this "
            "stage longer (steps/lr) or lower gate_min_accuracy"
        )


def cleanup(run: Run) -> dict:
    """Save the final adapter, the loss plot and a summary; leave the process group."""
    summary = {}
    parallel.save_adapter(run.par, run.output / "adapter", run.ropes[-1], run.base_rope)
    if run.world.main:
        rows = run.metrics.rows()
        if rows:
            plot_losses(rows, run.output / "loss_by_stage.png")
        summary = {
            "steps": run.state.global_step,
            "tokens": run.state.tokens_seen,
            "base_model": run.base_path,
            "stages": [
                {
                    "max_length": p.max_length,
                    "steps": len(p.steps),
                    "samples": p.samples,
                    "pack_fill": round(p.fill, 4),
                    "deferred": p.deferred,
                    "packs_per_step": p.packs_per_step,
                    "tokens_per_step": p.tokens_per_step,
                    "rope": run.ropes[p.index].source,
                }
                for p in run.plans
            ],
            "tokens_per_step_target": run.cfg.step_tokens,
            "rows_longer_than_last_stage": run.too_long,
            "first_loss": rows[0]["loss"] if rows else None,
            "last_loss": rows[-1]["loss"] if rows else None,
        }
        (run.output / "summary.json").write_text(json.dumps(summary, indent=2))
        run.metrics.close()
    distributed.shutdown()
    return summary


def train(cfg: TrainConfig, stop_at: int | None = None) -> dict:
    """The whole recipe. ``stop_at`` ends the run after that global step (tests, budgets)."""
    run = setup(cfg)
    if cfg.isolation_check and run.state.global_step == 0:
        parallel.on_whole_model(run.par, lambda _: check_isolation(run))
    for plan in run.plans:
        if plan.index < run.state.stage:
            continue
        rope_utils.apply(run.model, run.ropes[plan.index])
        if not train_stage(run, plan, stop_at):
            distributed.shutdown()
            return {"stopped_at": run.state.global_step}
    return cleanup(run)
