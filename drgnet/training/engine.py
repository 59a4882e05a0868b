"""The one training loop: any task (batch -> dict of losses) over any stream of batches.

Joint training (:func:`fit`), camera adaptation (:mod:`drgnet.training.adapt`) and feedback retraining
(``feedback.retrain``) are tasks: ``task(batch) -> {"loss": ..., components...}``, ``task.model`` the network
the optimiser trains. A task may also define two hooks the loop calls around each optimiser step:

* ``before_step(step)``: e.g. freeze a discriminator, remember the step for a warm-up ramp;
* ``after_step(losses, step) -> dict[str, float]``: e.g. a discriminator step, an EMA teacher update; what it
  returns is logged with the losses.

Keys starting with ``_`` in a task's output are intermediate tensors for its hooks, never logged.

All three start the same way: :func:`prepare_training` (seed, device, AdamW) and :func:`step_progress` (a bar in a
terminal, or a report to a job page).

:func:`fit` adds epochs around :func:`run_steps`: seedable (the same seed gives the same run), resumable
(``out/last`` holds weights, optimizer and loop state after every epoch), best checkpoint by validation QWK in
``out/best``, data-parallel under torchrun (``drgnet.training.distributed``): each rank trains on its share of
every epoch, gradients are averaged by DistributedDataParallel, and rank 0 alone evaluates and writes.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, WeightedRandomSampler
from tqdm import tqdm

from drgnet.config import TrainConfig, to_dict
from drgnet.model.checkpoint import load_checkpoint, load_optimizer_state, save_checkpoint
from drgnet.training import distributed
from drgnet.training.data import FundusDataset, balanced_weights
from drgnet.training.evaluate import evaluate

T = TypeVar("T")
Batch = dict[str, torch.Tensor]
StepCallback = Callable[[int, dict[str, float]], None]
#: Progress for a person watching elsewhere (a job page): (fraction done, what is happening).
ProgressReport = Callable[[float, str], None]

MAX_GRAD_NORM = 5.0  # gradient clipping of every task: a noisy correction or an early GAN step cannot blow up


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so the same seed gives the same run."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def forever(batches: Iterable[T]) -> Iterator[T]:
    """Cycle through a loader without end (step-budgeted training draws as many batches as it needs)."""
    while True:
        yield from batches


def param_groups(model: nn.Module, lr: float, encoder_lr_scale: float = 1.0) -> list[dict[str, Any]]:
    """Trainable parameters in two groups: the (pretrained) encoder at ``lr * encoder_lr_scale``, the rest at ``lr``.

    A model without ``encoder_parameters`` (the reference network, a discriminator) is one group.
    """
    if not hasattr(model, "encoder_parameters"):
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    else:
        groups = [
            {"params": [p for p in model.encoder_parameters() if p.requires_grad], "lr": lr * encoder_lr_scale},
            {"params": [p for p in model.head_parameters() if p.requires_grad], "lr": lr},
        ]
    for g in groups:
        g["initial_lr"] = g["lr"]  # what the schedule scales
    return groups


def make_optimizer(
    model: nn.Module, lr: float, encoder_lr_scale: float = 1.0, weight_decay: float = 1e-4
) -> torch.optim.Optimizer:
    """AdamW over :func:`param_groups`."""
    return torch.optim.AdamW(param_groups(model, lr, encoder_lr_scale), weight_decay=weight_decay)


def warmup_cosine(step: int, total: int) -> float:
    """Linear warm-up over the first 5% of steps, then cosine decay to a floor of 2% of the base rate."""
    warmup = max(1, total // 20)
    if step < warmup:
        factor = (step + 1) / warmup
    else:
        factor = 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    return max(factor, 0.02)


def constant(step: int, total: int) -> float:
    """The base learning rate throughout (fine-tuning an already trained model)."""
    return 1.0


SCHEDULES: dict[str, Callable[[int, int], float]] = {"cosine": warmup_cosine, "constant": constant}


def schedule_named(name: str) -> Callable[[int, int], float]:
    """A learning-rate schedule by name; a ValueError lists the known ones."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    return SCHEDULES[name]


def run_steps(
    task: nn.Module,
    batches: Iterator[Batch],
    optimizer: torch.optim.Optimizer,
    steps: int,
    *,
    first_step: int = 0,
    total_steps: int = 0,
    schedule: str = "constant",
    device: str | torch.device = "cpu",
    runner: nn.Module | None = None,
    on_step: StepCallback | None = None,
) -> dict[str, float]:
    """Train ``task.model`` for up to ``steps`` optimiser steps (fewer if ``batches`` runs out).

    Args:
        task: Module mapping a batch to ``{"loss": ..., components}``; optional ``before_step`` / ``after_step``.
        batches: Batches of CPU tensors; moved to ``device`` here.
        optimizer: Built once by the caller (:func:`make_optimizer`); its groups carry ``initial_lr``.
        steps: The budget of this call.
        first_step: Global index of the first step (the schedule and the hooks see global steps).
        total_steps: Length of the whole schedule (default: ``first_step + steps``).
        schedule: A name of :data:`SCHEDULES`.
        runner: What is called on the batch (the DDP wrapper of ``task``); default ``task``.
        on_step: Called with (global step, logged floats) after every step (progress bars, job leases).

    Returns:
        The mean of every logged value over the steps run.
    """
    factor_at = schedule_named(schedule)
    total = total_steps or first_step + steps
    runner = runner or task
    before, after = getattr(task, "before_step", None), getattr(task, "after_step", None)
    sums: dict[str, float] = {}
    done = 0
    for step in range(first_step, first_step + steps):
        batch = next(batches, None)
        if batch is None:
            break
        factor = factor_at(step, total)
        for g in optimizer.param_groups:
            g["lr"] = g["initial_lr"] * factor
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        if before is not None:
            before(step)
        losses = runner(batch)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(task.model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        logged = {k: float(v.detach()) for k, v in losses.items() if not k.startswith("_")}
        if after is not None:
            logged.update(after(losses, step))
        done += 1
        for k, v in logged.items():
            sums[k] = sums.get(k, 0.0) + v
        if on_step is not None:
            on_step(step, logged)
    return {k: v / max(done, 1) for k, v in sums.items()}


def bar_callback(bar: tqdm) -> StepCallback:
    """An ``on_step`` callback that advances a progress bar and shows the running loss."""

    def update(_: int, logged: dict[str, float]) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{logged['loss']:.3f}")

    return update


class OptimiserSettings(Protocol):
    """What every training config (:class:`TrainConfig`, ``TransferConfig``, ``RetrainConfig``) says about the run."""

    seed: int
    lr: float
    encoder_lr_scale: float
    weight_decay: float


def prepare_training(model: nn.Module, cfg: OptimiserSettings, device: str | torch.device) -> torch.optim.Optimizer:
    """The start of every run (fit, camera adaptation, feedback retraining): the same seed gives the same run.

    Seeds Python, NumPy and torch with ``cfg.seed`` (:func:`seed_everything`), moves ``model`` to ``device`` in
    training mode and returns its AdamW optimiser (:func:`make_optimizer`). Modules a task creates afterwards (a
    discriminator, an EMA teacher) are initialised from the seeded generators.
    """
    seed_everything(cfg.seed)
    model.to(device).train()
    return make_optimizer(model, cfg.lr, cfg.encoder_lr_scale, cfg.weight_decay)


@contextmanager
def step_progress(total: int, desc: str, show: bool | ProgressReport) -> Iterator[StepCallback]:
    """An ``on_step`` callback reporting ``total`` steps: a terminal bar, a report callable, or nothing.

    Args:
        total: Steps the run will take.
        desc: What is running ("epoch 2/10", "adapt", "fine-tuning").
        show: True for a tqdm bar (closed on leaving the block), False for silence, or a callable that receives
            (fraction done, ``"<desc> step i/total: loss x"``), e.g. a job's progress report.
    """
    if callable(show):
        report = show

        def update(step: int, logged: dict[str, float]) -> None:
            report((step + 1) / max(total, 1), f"{desc} step {step + 1}/{total}: loss {logged['loss']:.3f}")

        yield update
        return
    bar = tqdm(total=total, desc=desc, disable=not show)
    try:
        yield bar_callback(bar)
    finally:
        bar.close()


@dataclass
class FitResult:
    best: Path
    last: Path
    best_metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None  # the best weights, on CPU
    seconds: float = 0.0


@dataclass
class _FitState:
    """What ``out/last`` stores to resume: where the loop is and the best so far."""

    epoch: int = 0
    best_score: tuple[float, float] = (-math.inf, -math.inf)
    best_metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None

    def trainer_state(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "best_score": list(self.best_score),
            "best_metrics": self.best_metrics,
            "history": self.history,
        }


def score(metrics: dict[str, Any]) -> tuple[float, float]:
    """Checkpoint selection: validation QWK first, referable AUC to break ties (missing figures rank last).

    A run without a validation set records only its training loss (``train_loss``): the lowest loss ranks first.
    """

    def val(key: str) -> float:
        v = metrics.get(key, float("nan"))
        return -math.inf if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    if "qwk" not in metrics and "train_loss" in metrics:
        loss = val("train_loss")  # -inf when missing or NaN: ranks last, as a missing QWK does
        return (-loss if loss > -math.inf else -math.inf), -math.inf
    return val("qwk"), val("referable_auc")


def _resume(last: Path, model: nn.Module, optimizer: torch.optim.Optimizer, device: Any) -> _FitState:
    resumed, _ = load_checkpoint(last)
    model.load_state_dict(resumed.state_dict())
    model.to(device)
    state = load_optimizer_state(last, optimizer)
    return _FitState(
        epoch=int(state["epoch"]) + 1,
        best_score=tuple(state["best_score"]),
        best_metrics=state.get("best_metrics", {}),
        history=state.get("history", []),
    )


def _epoch_batches(train_set: FundusDataset, cfg: TrainConfig, ctx: Any, epoch: int, steps: int) -> DataLoader:
    # Every rank draws the same epoch (same seed) and trains on its own positions of it.
    generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
    # A dataset of mixed sources (drgnet.training.views) knows its own draw weights, grade balance included.
    own_weights = getattr(train_set, "sampling_weights", None)
    if cfg.grade_balanced_sampling or own_weights is not None:
        weights = own_weights() if own_weights is not None else balanced_weights(train_set.grades)
        drawn = WeightedRandomSampler(weights, steps * cfg.batch_size * ctx.world_size, generator=generator)
        sampler = distributed.ShardedSampler(drawn, ctx.rank, ctx.world_size, epoch)
        return DataLoader(train_set, cfg.batch_size, sampler=sampler, num_workers=cfg.workers, drop_last=True)
    sampler = distributed.ShardedSampler(RandomSampler(train_set, generator=generator), ctx.rank, ctx.world_size, epoch)
    return DataLoader(
        train_set, cfg.batch_size, sampler=sampler, generator=generator, num_workers=cfg.workers, drop_last=True
    )


def _ddp_runner(task: nn.Module, ctx: Any, device: Any) -> nn.Module:
    # The task stays as it is (task.model the plain DRGNet, for checkpoints); the forward runs through the DDP
    # wrapper so gradients are averaged across ranks. A static graph: the parameters a task uses are the same
    # every step, but not necessarily all of them (without the constraint the lesion-only grade head is unused),
    # which DDP then finds out once in the first step instead of searching the graph at every step.
    if not ctx.distributed:
        return task
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.local_rank] if torch.device(device).type == "cuda" else None
    return DistributedDataParallel(task, device_ids=ids, static_graph=True)


@dataclass
class _Writer:
    """What rank 0 needs after each epoch to evaluate and write checkpoints."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    val_set: FundusDataset | None
    cfg: TrainConfig
    out: Path
    meta: dict[str, Any]
    progress: bool
    log: Callable[[str], None]
    device: Any

    def end_epoch(self, state: _FitState, record: dict[str, Any]) -> None:
        """Evaluate, keep the best checkpoint, write the resumable last one and the history."""
        model, cfg, epoch = self.model, self.cfg, record["epoch"]
        if self.val_set is not None and len(self.val_set):
            loader = DataLoader(self.val_set, cfg.batch_size, num_workers=cfg.workers)
            metrics = evaluate(model, loader, self.progress, device=self.device)
        else:  # no validation set: the checkpoint kept is the one of the lowest training loss
            metrics = {"train_loss": record["train"].get("loss", float("nan"))}
        record["val"] = metrics
        state.history.append(record)
        line = f"epoch {epoch + 1}: loss {record['train'].get('loss', float('nan')):.3f}"
        if "qwk" in metrics:
            line += (
                f"  val QWK {metrics['qwk']:.3f}  acc {metrics.get('accuracy', float('nan')):.3f}  "
                f"lesion AUPR {metrics.get('lesion_aupr_mean', float('nan')):.3f}"
            )
        else:
            line += "  (no validation set: the lowest training loss is kept)"
        self.log(line)
        best, last = self.out / "best", self.out / "last"
        if score(metrics) > state.best_score or not best.exists():
            state.best_score, state.best_metrics = score(metrics), {"epoch": epoch, **metrics}
            save_checkpoint(best, model, model.config, metrics=state.best_metrics, extra=self.meta)
            distributed.trace("checkpoint", path=str(best), epoch=epoch)
            state.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        save_checkpoint(
            last,
            model,
            model.config,
            metrics=metrics,
            extra=self.meta,
            optimizer=self.optimizer,
            trainer_state=state.trainer_state(epoch),
        )
        distributed.trace("checkpoint", path=str(last), epoch=epoch)
        (self.out / "history.json").write_text(json.dumps(state.history, indent=2, default=float) + "\n")


def fit(
    task: nn.Module,
    train_set: FundusDataset,
    val_set: FundusDataset | None,
    cfg: TrainConfig,
    out: Path,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    extra_meta: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> FitResult:
    """Train ``task.model`` with ``task`` for ``cfg.epochs`` epochs of :func:`run_steps`.

    Args:
        task: Module whose forward maps a batch to ``{"loss": ..., components...}``; ``task.model`` is a DRGNet.
        train_set: Dataset of batch items.
        val_set: Validation dataset (None: select on training loss only).
        cfg: Budget, optimiser, schedule and seed.
        out: Run folder; ``out/best`` and ``out/last`` are checkpoints, ``out/history.json`` the per-epoch log.
        resume: Continue from ``out/last`` if it exists.
        progress: Show progress bars.
        log: Where the per-epoch line goes.
        extra_meta: Stored in the checkpoints' description beside the training config.
        device: Where to train ("cpu", "cuda"); checkpoints are always written from CPU tensors. Under torchrun
            "cuda" means this rank's GPU (``LOCAL_RANK``).

    Under torchrun (``WORLD_SIZE`` > 1) every rank calls this with the same arguments: ``cfg.batch_size`` is
    per rank, an epoch is shared out between the ranks, and only rank 0 evaluates, logs and writes ``out``.
    Other ranks return a FitResult without metrics or best weights.
    """
    t_start = time.perf_counter()
    ctx = distributed.setup(device)
    if ctx.distributed and torch.device(device).type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
    if not ctx.is_main:
        progress, log = False, _silent
    out = Path(out)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    model = task.model
    optimizer = prepare_training(model, cfg, device)
    state = _FitState()
    if resume and (out / "last" / "trainer.json").is_file():
        state = _resume(out / "last", model, optimizer, device)
        log(f"resuming {out} after epoch {state.epoch}")
    runner = _ddp_runner(task, ctx, device)
    steps_per_epoch = _steps_per_epoch(train_set, cfg, ctx.world_size)
    meta = {"train_config": to_dict(cfg), **(extra_meta or {})}
    writer = _Writer(model, optimizer, val_set, cfg, out, meta, progress, log, device)
    for epoch in range(state.epoch, cfg.epochs):
        model.train()
        with step_progress(steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", progress) as on_step:
            means = run_steps(
                task,
                iter(_epoch_batches(train_set, cfg, ctx, epoch, steps_per_epoch)),
                optimizer,
                steps_per_epoch,
                first_step=epoch * steps_per_epoch,
                total_steps=steps_per_epoch * cfg.epochs,
                schedule=cfg.schedule,
                device=device,
                runner=runner,
                on_step=on_step,
            )
        record: dict[str, Any] = {"epoch": epoch, "train": distributed.mean_across_ranks(means)}
        if ctx.is_main:
            writer.end_epoch(state, record)
        else:
            state.history.append(record)  # rank 0 evaluates and writes; the others wait for it
        distributed.barrier()
    distributed.trace_weights(model, "fit_done")
    last, best = out / "last", out / "best"
    return FitResult(best, last, state.best_metrics, state.history, state.best_state, time.perf_counter() - t_start)


def _steps_per_epoch(train_set: FundusDataset, cfg: TrainConfig, world_size: int) -> int:
    steps = math.ceil(len(train_set) / (cfg.batch_size * world_size))
    if not cfg.max_steps_per_epoch:
        return steps
    # A dataset with its own draw weights is drawn with replacement: its epoch is the step budget itself, so
    # four real photographs train as many steps as four hundred synthetic ones.
    drawn = hasattr(train_set, "sampling_weights")
    return cfg.max_steps_per_epoch if drawn else min(steps, cfg.max_steps_per_epoch)


def _silent(_: str) -> None:
    return None


__all__ = [
    "MAX_GRAD_NORM",
    "SCHEDULES",
    "FitResult",
    "OptimiserSettings",
    "ProgressReport",
    "bar_callback",
    "fit",
    "forever",
    "make_optimizer",
    "param_groups",
    "prepare_training",
    "run_steps",
    "score",
    "seed_everything",
    "step_progress",
]
