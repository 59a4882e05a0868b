"""A generic training loop: any task (batch -> dict of losses) over any dataset.

Seedable (the same seed gives the same run), resumable (``out/last`` holds weights, optimizer and loop state
after every epoch) and keeps the best checkpoint by validation QWK in ``out/best``. Data-parallel under
torchrun (``drgnet.training.distributed``): each rank trains on its share of every epoch, gradients are
averaged by DistributedDataParallel, and rank 0 alone evaluates and writes.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass
class FitResult:
    best: Path
    last: Path
    best_metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None  # the best weights, on CPU
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _score(metrics: dict[str, Any]) -> tuple[float, float]:
    """Checkpoint selection: validation QWK first, referable AUC to break ties."""

    def val(key: str) -> float:
        v = metrics.get(key, float("nan"))
        return -math.inf if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    return val("qwk"), val("referable_auc")


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with a slower learning rate for the (pretrained) encoder than for the new heads."""
    groups = [
        {"params": [p for p in model.encoder_parameters() if p.requires_grad], "lr": cfg.lr * cfg.encoder_lr_scale},
        {"params": [p for p in model.head_parameters() if p.requires_grad], "lr": cfg.lr},
    ]
    for g in groups:
        g["initial_lr"] = g["lr"]
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def _set_lr(optimizer: torch.optim.Optimizer, step: int, total: int) -> None:
    warmup = max(1, total // 20)
    factor = (
        (step + 1) / warmup
        if step < warmup
        else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    )
    for g in optimizer.param_groups:
        g["lr"] = g["initial_lr"] * max(factor, 0.02)


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
    """Train ``task.model`` with ``task`` for ``cfg.epochs`` epochs.

    Args:
        task: Module whose forward maps a batch to ``{"loss": ..., components...}``; ``task.model`` is a DRGNet.
        train_set, val_set: Datasets of batch items (``val_set`` None: select on training loss only).
        cfg: Budget, optimiser and seed.
        out: Run folder; ``out/best`` and ``out/last`` are checkpoints, ``out/history.json`` the per-epoch log.
        resume: Continue from ``out/last`` if it exists.
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
        progress = False

        def log(_: str) -> None:
            return None

    out = Path(out)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    model = task.model
    model.to(device)
    seed_everything(cfg.seed)
    optimizer = make_optimizer(model, cfg)
    start_epoch, best_score, best_metrics, history = 0, (-math.inf, -math.inf), {}, []
    best_state: dict[str, torch.Tensor] | None = None
    last, best = out / "last", out / "best"
    if resume and (last / "trainer.json").is_file():
        resumed, _ = load_checkpoint(last)
        model.load_state_dict(resumed.state_dict())
        model.to(device)
        state = load_optimizer_state(last, optimizer)
        start_epoch = int(state["epoch"]) + 1
        best_score = tuple(state["best_score"])
        best_metrics = state.get("best_metrics", {})
        history = state.get("history", [])
        log(f"resuming {out} after epoch {start_epoch}")

    # The task stays as it is (task.model the plain DRGNet, for checkpoints); the forward runs through the DDP
    # wrapper so gradients are averaged across ranks. A static graph: the parameters a task uses are the same
    # every step, but not necessarily all of them (without the constraint the lesion-only grade head is unused),
    # which DDP then finds out once in the first step instead of searching the graph at every step.
    runner: nn.Module = task
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        runner = DistributedDataParallel(
            task,
            device_ids=[ctx.local_rank] if torch.device(device).type == "cuda" else None,
            static_graph=True,
        )

    steps_per_epoch = math.ceil(len(train_set) / (cfg.batch_size * ctx.world_size))
    if cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    total_steps = steps_per_epoch * cfg.epochs
    meta = {"train_config": to_dict(cfg), **(extra_meta or {})}

    for epoch in range(start_epoch, cfg.epochs):
        # Every rank draws the same epoch (same seed) and trains on its own positions of it.
        generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        if cfg.grade_balanced_sampling:
            drawn = WeightedRandomSampler(
                balanced_weights(train_set.grades),
                steps_per_epoch * cfg.batch_size * ctx.world_size,
                generator=generator,
            )
            sampler = distributed.ShardedSampler(drawn, ctx.rank, ctx.world_size, epoch)
            loader = DataLoader(train_set, cfg.batch_size, sampler=sampler, num_workers=cfg.workers, drop_last=True)
        else:
            sampler = distributed.ShardedSampler(
                RandomSampler(train_set, generator=generator), ctx.rank, ctx.world_size, epoch
            )
            loader = DataLoader(
                train_set, cfg.batch_size, sampler=sampler, generator=generator, num_workers=cfg.workers, drop_last=True
            )
        model.train()
        sums: dict[str, float] = {}
        steps = 0
        bar = tqdm(loader, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress)
        for batch in bar:
            if steps >= steps_per_epoch:
                break
            _set_lr(optimizer, epoch * steps_per_epoch + steps, total_steps)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            losses = runner(batch)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            steps += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            bar.set_postfix(loss=f"{sums['loss'] / steps:.3f}")
        train_means = distributed.mean_across_ranks({k: v / max(steps, 1) for k, v in sums.items()})
        record: dict[str, Any] = {"epoch": epoch, "train": train_means}
        if not ctx.is_main:
            # Rank 0 evaluates and writes; the others wait for it so the next epoch starts together.
            history.append(record)
            distributed.barrier()
            continue
        if val_set is not None and len(val_set):
            val_loader = DataLoader(val_set, cfg.batch_size, num_workers=cfg.workers)
            metrics = evaluate(model, val_loader, progress=progress, device=device)
        else:
            metrics = {"qwk": -record["train"].get("loss", 0.0)}
        record["val"] = metrics
        history.append(record)
        log(
            f"epoch {epoch + 1}: loss {record['train'].get('loss', float('nan')):.3f}  "
            f"val QWK {metrics.get('qwk', float('nan')):.3f}  acc {metrics.get('accuracy', float('nan')):.3f}  "
            f"lesion AUPR {metrics.get('lesion_aupr_mean', float('nan')):.3f}"
        )
        score = _score(metrics)
        if score > best_score or not best.exists():
            best_score, best_metrics = score, {"epoch": epoch, **metrics}
            save_checkpoint(best, model, model.config, metrics=best_metrics, extra=meta)
            distributed.trace("checkpoint", path=str(best), epoch=epoch)
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        save_checkpoint(
            last,
            model,
            model.config,
            metrics=metrics,
            extra=meta,
            optimizer=optimizer,
            trainer_state={
                "epoch": epoch,
                "best_score": list(best_score),
                "best_metrics": best_metrics,
                "history": history,
            },
        )
        distributed.trace("checkpoint", path=str(last), epoch=epoch)
        (out / "history.json").write_text(json.dumps(history, indent=2, default=float) + "\n")
        distributed.barrier()
    distributed.trace_weights(model, "fit_done")
    return FitResult(best, last, best_metrics, history, best_state=best_state, seconds=time.perf_counter() - t_start)
