"""``drgnet adapt``: fine-tune a trained model for a new camera from unlabelled target photographs.

Each step sees a labelled source batch (the supervised joint loss keeps the model honest) and an unlabelled
target batch, and adds the transfer terms of :mod:`drgnet.losses.transfer`: Wasserstein alignment of pooled
features, ADVENT-style adversarial loss on the lesion maps' self-information, and direct entropy minimisation.
The discriminator has its own optimiser and is updated on detached maps after each network step.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from drgnet.config import LossConfig, TransferConfig, to_dict
from drgnet.losses.transfer import (
    LesionDiscriminator,
    adversarial_loss,
    discriminator_loss,
    entropy_loss,
    self_information,
    wasserstein_distance,
)
from drgnet.training.task import JointTask


class AdaptTask(nn.Module):
    """Supervised source loss plus the weighted transfer terms on a target batch."""

    def __init__(self, model: nn.Module, transfer: TransferConfig, loss: LossConfig | None = None) -> None:
        super().__init__()
        self.model = model
        self.joint = JointTask(model, loss)
        self.transfer = transfer
        self.discriminator = LesionDiscriminator() if transfer.adversarial_weight > 0 else None

    def forward(
        self, source: dict[str, torch.Tensor], target_images: torch.Tensor, step: int = 0
    ) -> dict[str, torch.Tensor]:
        cfg = self.transfer
        out_s = self.model(source["image"])
        losses = {f"source_{k}": v for k, v in self.joint.losses(out_s, source).items()}
        losses["_info_source"] = self_information(out_s.lesion_logits)
        if not self.uses_target:
            # Every transfer weight is 0: plain source fine-tuning, the baseline of the transfer benchmark.
            losses["loss"] = losses["source_loss"]
            return losses
        out_t = self.model(target_images)
        ramp = min(1.0, (step + 1) / max(cfg.ramp_steps, 1))
        total = losses["source_loss"]
        if cfg.wasserstein_weight > 0:
            losses["wasserstein"] = wasserstein_distance(
                out_s.pooled, out_t.pooled, cfg.wasserstein_method, cfg.sliced_projections, seed=step
            )
            total = total + ramp * cfg.wasserstein_weight * losses["wasserstein"]
        if cfg.entropy_weight > 0:
            losses["entropy"] = entropy_loss(out_t.lesion_logits, out_t.grade_logits)
            total = total + ramp * cfg.entropy_weight * losses["entropy"]
        info_t = self_information(out_t.lesion_logits)
        if self.discriminator is not None:
            losses["adversarial"] = adversarial_loss(self.discriminator, info_t)
            total = total + ramp * cfg.adversarial_weight * losses["adversarial"]
        losses["loss"] = total
        losses["_info_target"] = info_t  # for the discriminator step (detached there)
        return losses

    @property
    def uses_target(self) -> bool:
        cfg = self.transfer
        return cfg.wasserstein_weight > 0 or cfg.entropy_weight > 0 or cfg.adversarial_weight > 0


def adapt_step(
    task: AdaptTask,
    model_opt: torch.optim.Optimizer,
    disc_opt: torch.optim.Optimizer | None,
    source: dict[str, torch.Tensor],
    target_images: torch.Tensor,
    step: int,
) -> dict[str, float]:
    """One network step (discriminator frozen), then one discriminator step (network untouched)."""
    disc = task.discriminator
    if disc is not None:
        disc.requires_grad_(False)
    losses = task(source, target_images, step)
    model_opt.zero_grad(set_to_none=True)
    losses["loss"].backward()
    torch.nn.utils.clip_grad_norm_(task.model.parameters(), 5.0)
    model_opt.step()
    logged = {k: float(v.detach()) for k, v in losses.items() if not k.startswith("_")}
    if disc is not None:
        disc.requires_grad_(True)
    if disc is not None and disc_opt is not None:
        d_loss = discriminator_loss(disc, losses["_info_source"], losses["_info_target"])
        disc_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        disc_opt.step()
        logged["discriminator"] = float(d_loss.detach())
    return logged


def _forever(loader: DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    while True:
        yield from loader


@torch.inference_mode()
def mean_prediction_entropy(model: nn.Module, loader: DataLoader, device: str | torch.device = "cpu") -> float:
    """Mean normalised grade entropy over a dataset (lower: more confident)."""
    model.eval()
    values = []
    for batch in loader:
        logits = model(batch["image"].to(device)).grade_logits.float()
        p = torch.softmax(logits, dim=1).clamp_min(1e-12)
        values.append((-(p * p.log()).sum(dim=1) / np.log(p.shape[1])).cpu().numpy())
    return float(np.concatenate(values).mean()) if values else float("nan")


@dataclass
class AdaptResult:
    checkpoint: Path
    history: list[dict[str, float]]
    target_entropy_before: float
    target_entropy_after: float
    seconds: float


def adapt(
    checkpoint: Path,
    source: str | Path,
    target_images: str | Path,
    out: Path,
    cfg: TransferConfig | None = None,
    source_layout: str = "auto",
    progress: bool = True,
    log: Callable[[str], None] = print,
    device: str | torch.device = "cpu",
    model: nn.Module | None = None,
    source_indices: list[int] | None = None,
) -> AdaptResult:
    """Adapt ``checkpoint`` to the camera of ``target_images`` and write a normal checkpoint to ``out``.

    Args:
        checkpoint: The trained source model.
        source: Labelled source dataset folder (any layout ``open_dataset`` reads).
        target_images: Folder of unlabelled photographs from the new camera (sub-folders included).
        out: Checkpoint folder to write; ``drgnet predict`` and the app load it unchanged.
        model: Start from this in-memory model instead of loading ``checkpoint`` (benchmarks).
        source_indices: Use only these source samples (e.g. the training split).
    """
    from drgnet.data.readers import open_dataset
    from drgnet.data.transforms import train_transforms
    from drgnet.model.checkpoint import load_checkpoint, save_checkpoint
    from drgnet.training.data import FundusDataset
    from drgnet.training.loop import seed_everything

    cfg = cfg or TransferConfig()
    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    meta: dict[str, Any] = {}
    if model is None:
        model, meta = load_checkpoint(Path(checkpoint))
    model.to(device)
    size = model.config.input_size
    src_reader = open_dataset(source, layout=source_layout)
    tgt_reader = open_dataset(target_images, layout="folder")
    augment = None if cfg.augment == "none" else cfg.augment
    src = FundusDataset(
        src_reader,
        size,
        train_transforms(size, augment, seed=cfg.seed) if augment else None,
        indices=source_indices,
    )
    tgt = FundusDataset(tgt_reader, size, train_transforms(size, augment, seed=cfg.seed + 1) if augment else None)
    tgt_eval = FundusDataset(tgt_reader, size, None)
    if len(src) < cfg.batch_size or len(tgt) < 2:
        raise ValueError(
            f"adapt needs at least {cfg.batch_size} source and 2 target photographs "
            f"(got {len(src)} in {source}, {len(tgt)} in {target_images})"
        )
    g = torch.Generator().manual_seed(cfg.seed)
    src_loader = DataLoader(src, cfg.batch_size, shuffle=True, drop_last=True, generator=g, num_workers=cfg.workers)
    tgt_loader = DataLoader(
        tgt, min(cfg.batch_size, len(tgt)), shuffle=True, drop_last=True, generator=g, num_workers=cfg.workers
    )
    eval_loader = DataLoader(tgt_eval, cfg.batch_size, num_workers=cfg.workers)
    before = mean_prediction_entropy(model, eval_loader, device)

    task = AdaptTask(model, cfg).to(device)
    model_opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    disc_opt = (
        torch.optim.Adam(task.discriminator.parameters(), lr=cfg.discriminator_lr, betas=(0.5, 0.999))
        if task.discriminator is not None
        else None
    )
    history: list[dict[str, float]] = []
    src_iter, tgt_iter = _forever(src_loader), _forever(tgt_loader)
    bar = tqdm(range(cfg.steps), desc="adapt", disable=not progress)
    for step in bar:
        model.train()
        source_batch = {k: v.to(device, non_blocking=True) for k, v in next(src_iter).items()}
        target_batch = next(tgt_iter)["image"].to(device, non_blocking=True)
        logged = adapt_step(task, model_opt, disc_opt, source_batch, target_batch, step)
        history.append(logged)
        bar.set_postfix(loss=f"{logged['loss']:.3f}")
    after = mean_prediction_entropy(model, eval_loader, device)
    seconds = time.perf_counter() - t0
    log(f"target grade entropy: {before:.3f} before, {after:.3f} after adaptation ({seconds:.0f} s)")
    last = {k: float(np.mean([h[k] for h in history[-20:] if k in h])) for k in history[-1]} if history else {}
    metrics = {"target_entropy_before": before, "target_entropy_after": after, "final_losses": last}
    extra = {
        "adapted_from": str(checkpoint),
        "adapted_from_sha256": meta.get("weights_sha256"),
        "transfer": to_dict(cfg),
        "target_images": str(target_images),
        "source": str(source),
    }
    model.cpu()
    save_checkpoint(Path(out), model, model.config, metrics=metrics, extra=extra)
    model.to(device)
    return AdaptResult(Path(out), history, before, after, seconds)


def with_terms(cfg: TransferConfig, wasserstein: bool, entropy: bool) -> TransferConfig:
    """The config with the Wasserstein and/or entropy (direct + adversarial) terms switched off."""
    return dataclasses.replace(
        cfg,
        wasserstein_weight=cfg.wasserstein_weight if wasserstein else 0.0,
        entropy_weight=cfg.entropy_weight if entropy else 0.0,
        adversarial_weight=cfg.adversarial_weight if entropy else 0.0,
    )
