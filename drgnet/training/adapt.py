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

from drgnet.config import LossConfig, TransferConfig, to_dict
from drgnet.data.readers import open_dataset
from drgnet.data.transforms import train_transforms
from drgnet.losses.transfer import (
    LesionDiscriminator,
    adversarial_loss,
    discriminator_loss,
    entropy_loss,
    self_information,
    wasserstein_distance,
)
from drgnet.metrics import normalised_grade_entropy
from drgnet.model.checkpoint import load_checkpoint, save_checkpoint
from drgnet.training.data import FundusDataset
from drgnet.training.engine import forever, prepare_training, run_steps, step_progress
from drgnet.training.evaluate import collect_predictions
from drgnet.training.task import JointTask


class AdaptTask(nn.Module):
    """Supervised source loss plus the weighted transfer terms on a target batch.

    A batch is a labelled source batch (the keys of :mod:`drgnet.training.task`) plus ``target_image``, the
    unlabelled target photographs. The discriminator is frozen during the network step and trained right after it
    on the detached self-information maps (its own optimiser; ``discriminator_optimizer = None`` skips that).
    """

    def __init__(self, model: nn.Module, transfer: TransferConfig, loss: LossConfig | None = None) -> None:
        super().__init__()
        self.model = model
        self.joint = JointTask(model, loss if loss is not None else transfer.loss)
        self.transfer = transfer
        self.discriminator = LesionDiscriminator() if transfer.adversarial_weight > 0 else None
        self.discriminator_optimizer = (
            torch.optim.Adam(self.discriminator.parameters(), lr=transfer.discriminator_lr, betas=(0.5, 0.999))
            if self.discriminator is not None
            else None
        )
        self.step = 0  # of the loop, for the warm-up ramp of the transfer weights

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.transfer
        source = {k: v for k, v in batch.items() if k != "target_image"}
        out_s = self.model(source["image"])
        losses = {f"source_{k}": v for k, v in self.joint.losses(out_s, source).items()}
        losses["_info_source"] = self_information(out_s.lesion_logits)
        if not self.uses_target:
            # Every transfer weight is 0: plain source fine-tuning, the baseline of the transfer benchmark.
            losses["loss"] = losses["source_loss"]
            return losses
        out_t = self.model(batch["target_image"])
        ramp = min(1.0, (self.step + 1) / max(cfg.ramp_steps, 1))
        total = losses["source_loss"]
        if cfg.wasserstein_weight > 0:
            losses["wasserstein"] = wasserstein_distance(
                out_s.pooled, out_t.pooled, cfg.wasserstein_method, cfg.sliced_projections, seed=self.step
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

    def before_step(self, step: int) -> None:
        """The network step: the adversarial loss back-propagates through a frozen discriminator."""
        self.step = step
        if self.discriminator is not None:
            self.discriminator.requires_grad_(False)

    def after_step(self, losses: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        """The discriminator step, on detached maps (the network is untouched)."""
        disc, opt = self.discriminator, self.discriminator_optimizer
        if disc is None:
            return {}
        disc.requires_grad_(True)
        if opt is None or "_info_target" not in losses:
            return {}
        d_loss = discriminator_loss(disc, losses["_info_source"], losses["_info_target"])
        opt.zero_grad(set_to_none=True)
        d_loss.backward()
        opt.step()
        return {"discriminator": float(d_loss.detach())}


def adapt_step(
    task: AdaptTask, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor], step: int
) -> dict[str, float]:
    """One step of the training loop on one batch: the network step, then the discriminator step."""
    return run_steps(task, iter([batch]), optimizer, 1, first_step=step)


def paired_batches(source: DataLoader, target: DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    """Endless source batches, each with a target batch's photographs as ``target_image``."""
    for src, tgt in zip(forever(source), forever(target), strict=False):
        yield {**src, "target_image": tgt["image"]}


def mean_prediction_entropy(model: nn.Module, loader: DataLoader, device: str | torch.device = "cpu") -> float:
    """Mean normalised grade entropy over a dataset (lower: more confident; ``drgnet.metrics``)."""
    _, probs = collect_predictions(model, loader, device=device)
    return float(normalised_grade_entropy(probs).mean()) if len(probs) else float("nan")


@dataclass
class AdaptResult:
    checkpoint: Path
    history: list[dict[str, float]]
    target_entropy_before: float
    target_entropy_after: float
    seconds: float


@dataclass
class _AdaptData:
    source: DataLoader
    target: DataLoader
    target_eval: DataLoader  # the target photographs without augmentation, to measure grade entropy


def _adapt_data(
    source: str | Path,
    target_images: str | Path,
    size: int,
    cfg: TransferConfig,
    source_layout: str,
    source_indices: list[int] | None,
) -> _AdaptData:
    augment = None if cfg.augment == "none" else cfg.augment
    src_reader = open_dataset(source, layout=source_layout)
    tgt_reader = open_dataset(target_images, layout="folder")
    src_aug = train_transforms(size, augment, seed=cfg.seed) if augment else None
    tgt_aug = train_transforms(size, augment, seed=cfg.seed + 1) if augment else None
    src = FundusDataset(src_reader, size, src_aug, indices=source_indices)
    tgt = FundusDataset(tgt_reader, size, tgt_aug)
    if len(src) < cfg.batch_size or len(tgt) < 2:
        raise ValueError(
            f"adapt needs at least {cfg.batch_size} source and 2 target photographs "
            f"(got {len(src)} in {source}, {len(tgt)} in {target_images})"
        )
    g = torch.Generator().manual_seed(cfg.seed)
    return _AdaptData(
        DataLoader(src, cfg.batch_size, shuffle=True, drop_last=True, generator=g, num_workers=cfg.workers),
        DataLoader(
            tgt, min(cfg.batch_size, len(tgt)), shuffle=True, drop_last=True, generator=g, num_workers=cfg.workers
        ),
        DataLoader(FundusDataset(tgt_reader, size, None), cfg.batch_size, num_workers=cfg.workers),
    )


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
        cfg: Budget, optimiser and the weights of the transfer terms.
        source_layout: Layout of ``source``.
        progress: Show a progress bar.
        log: Where the summary line goes.
        device: Where to train.
        model: Start from this in-memory model instead of loading ``checkpoint`` (benchmarks).
        source_indices: Use only these source samples (e.g. the training split).
    """
    cfg = cfg or TransferConfig()
    t0 = time.perf_counter()
    meta: dict[str, Any] = {}
    if model is None:
        model, meta = load_checkpoint(Path(checkpoint))
    optimizer = prepare_training(model, cfg, device)
    data = _adapt_data(source, target_images, model.config.input_size, cfg, source_layout, source_indices)
    before = mean_prediction_entropy(model, data.target_eval, device)
    model.train()  # the entropy above was measured in eval mode
    task = AdaptTask(model, cfg).to(device)
    history: list[dict[str, float]] = []
    with step_progress(cfg.steps, "adapt", progress) as show:

        def on_step(step: int, logged: dict[str, float]) -> None:
            history.append(logged)
            show(step, logged)

        run_steps(task, paired_batches(data.source, data.target), optimizer, cfg.steps, device=device, on_step=on_step)
    after = mean_prediction_entropy(model, data.target_eval, device)
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
