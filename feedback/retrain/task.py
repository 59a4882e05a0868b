"""The fine-tuning objective on corrected images and the run that optimises it.

The task is one more task of :mod:`drgnet.training.engine`: generalised cross-entropy (or CE) for grades,
small-loss selection among corrected images, the lesion-grade constraint (so grade-only corrections teach the
lesion branch) and an EMA teacher (timm's ``ModelEmaV3``) whose predictions are soft targets on corrected images;
the EMA weights are what is evaluated and saved.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from timm.utils import ModelEmaV3
from torch.utils.data import Dataset

from drgnet.losses import (
    attention_coverage_loss,
    cross_entropy_per_sample,
    generalized_cross_entropy,
    small_loss_weights,
    soft_target_kl,
    symmetric_kl,
)
from drgnet.model import DRGNet, ModelOutput
from drgnet.training.engine import prepare_training, run_steps, step_progress
from drgnet.training.task import lesion_terms
from feedback.retrain.config import RetrainConfig
from feedback.retrain.data import mixed_batches

Progress = Callable[[float, str], None]

#: The teacher's decay ramps up as ``step / (EMA_WARMUP_STEPS + step)`` to ``ema_decay``: a short run still moves it.
EMA_WARMUP_STEPS = 10


def make_teacher(model: DRGNet, decay: float) -> ModelEmaV3 | None:
    """An EMA copy of ``model`` (weights averaged, batch-norm statistics copied); None when ``decay`` is 0."""
    if decay <= 0:
        return None
    teacher = ModelEmaV3(
        model, decay=decay, use_warmup=True, warmup_gamma=EMA_WARMUP_STEPS, warmup_power=1.0, exclude_buffers=True
    )
    teacher.module.requires_grad_(False)
    return teacher


class FeedbackTask(torch.nn.Module):
    """The fine-tuning objective on a mixed batch of corrected and replayed images.

    ``forward(batch) -> {"loss": ..., components}`` like :class:`drgnet.training.task.JointTask`; the grade terms
    are per-sample (GCE or CE), weighted by ``sample_weight`` and by small-loss selection among corrected images.
    """

    def __init__(self, model: DRGNet, cfg: RetrainConfig, teacher: ModelEmaV3 | None = None) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.teacher = teacher  # its parameters are frozen; the optimiser only ever sees model's

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        output = self.model(batch["image"])
        teacher = None
        corrected = batch["corrected"] > 0
        wanted = self.cfg.consistency_weight > 0 or self.cfg.lesion_consistency_weight > 0
        if self.teacher is not None and wanted and bool(corrected.any()):
            with torch.no_grad():
                teacher = self.teacher.module(batch["image"])
        return self.losses(output, batch, teacher)

    def _grade_terms(self, logits: torch.Tensor, grades: torch.Tensor) -> torch.Tensor:
        if self.cfg.loss.grade_loss == "gce":
            return generalized_cross_entropy(logits, grades, q=self.cfg.loss.gce_q)
        return cross_entropy_per_sample(logits, grades)

    def after_step(self, losses: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        """Move the EMA teacher towards the student just updated."""
        if self.teacher is not None:
            self.teacher.update(self.model, step=step + 1)
        return {}

    def losses(
        self, output: ModelOutput, batch: dict[str, torch.Tensor], teacher: ModelOutput | None = None
    ) -> dict[str, torch.Tensor]:
        """The loss terms; ``teacher``: the EMA teacher's output on the same batch (consistency terms)."""
        cfg, weights = self.cfg, self.cfg.loss
        grades = batch["grade"]
        known = grades >= 0
        corrected = batch["corrected"] > 0
        per_sample = self._grade_terms(output.grade_logits, grades)
        keep = small_loss_weights(per_sample, cfg.drop_fraction, eligible=corrected & known)
        weight = batch["sample_weight"].to(per_sample.dtype) * keep * known
        norm = weight.sum().clamp_min(1e-6)
        grade = (per_sample * weight).sum() / norm
        lesion_grade = (self._grade_terms(output.lesion_grade_logits, grades) * weight).sum() / norm
        dice_pairs = None
        if not cfg.partial_dice and "fov" in batch:
            # Fully labelled: every pixel of the field of view has weight (pairs of replayed images included).
            inside = batch["fov"][:, None] > 0
            dice_pairs = ((batch["mask_weights"] > 0) | ~inside).all(dim=-1).all(dim=-1)
        seg = lesion_terms(output, batch, weights, dice_pairs)
        constraint = symmetric_kl(output.grade_logits, output.lesion_grade_logits)
        attention = attention_coverage_loss(output.attention, batch["masks"], batch["mask_weights"])
        total = (
            weights.lesion_weight * (seg["dice"] + seg["focal"])
            + weights.grade_weight * grade
            + weights.lesion_grade_weight * lesion_grade
            + weights.constraint_weight * constraint
            + weights.attention_weight * attention
        )
        out = {
            "lesion_dice": seg["dice"],
            "lesion_focal": seg["focal"],
            "grade": grade,
            "lesion_grade": lesion_grade,
            "constraint": constraint,
            "attention": attention,
            "kept": keep[corrected & known].mean() if bool((corrected & known).any()) else keep.mean(),
        }
        if teacher is not None and cfg.consistency_weight > 0:
            consistency = soft_target_kl(output.grade_logits[corrected], teacher.grade_logits[corrected]).mean()
            out["consistency"] = consistency
            total = total + cfg.consistency_weight * consistency
        if teacher is not None and cfg.lesion_consistency_weight > 0 and "fov" in batch:
            lesion_consistency = unlabelled_consistency(
                output.lesion_logits, teacher.lesion_logits, batch["mask_weights"], batch["fov"], corrected
            )
            out["lesion_consistency"] = lesion_consistency
            total = total + cfg.lesion_consistency_weight * lesion_consistency
        out["loss"] = total
        return out


def unlabelled_consistency(
    logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask_weights: torch.Tensor,
    fov: torch.Tensor,
    corrected: torch.Tensor,
) -> torch.Tensor:
    """Mean BCE of the student's lesion maps towards the teacher's probabilities on the unlabelled pixels.

    Unlabelled: inside the field of view of a corrected image, with no weight in ``mask_weights`` (a partial
    correction's untouched pixels, every pixel of a grade-only correction, lesions a full correction left out).
    Their label stays unknown: the term only keeps the maps there where the slowly moving teacher has them, so a
    handful of painted strokes cannot turn into "lesion everywhere". Its gradient is zero where student and teacher
    agree. Args are ``(B, 4, H, W)`` logits and weights, ``(B, H, W)`` fov and ``(B,)`` corrected flags.
    """
    unlabelled = (mask_weights <= 0).to(logits.dtype) * fov[:, None].to(logits.dtype)
    unlabelled = unlabelled * corrected.to(logits.dtype)[:, None, None, None]
    bce = F.binary_cross_entropy_with_logits(logits, torch.sigmoid(teacher_logits), reduction="none")
    return (bce * unlabelled).sum() / unlabelled.sum().clamp_min(1.0)


def finetune(
    model: DRGNet,
    corrections: Dataset,
    replay: Dataset | None,
    cfg: RetrainConfig,
    progress: Progress | None = None,
    healthy: Dataset | None = None,
) -> DRGNet:
    """Fine-tune ``model`` in place on corrected images (plus replay); return the model to evaluate and save.

    That is the EMA teacher when ``cfg.ema_decay`` > 0, else the student itself. ``healthy``: real photographs of
    healthy eyes (a :class:`~feedback.retrain.data.ReplayDataset`), ``cfg.healthy_per_batch`` of them in every
    batch.
    """
    device = torch.device(cfg.device)
    optimizer = prepare_training(model, cfg, device)
    teacher = make_teacher(model, cfg.ema_decay)
    task = FeedbackTask(model, cfg, teacher)
    batches = mixed_batches(
        corrections, cfg.batch_size, cfg.seed, [(replay, cfg.replay_per_batch), (healthy, cfg.healthy_per_batch)]
    )
    with step_progress(cfg.steps, "fine-tuning", progress or False) as report:
        run_steps(task, batches, optimizer, cfg.steps, device=device, on_step=report)
    result = teacher.module if teacher is not None else model
    result.eval()
    return result.cpu()  # type: ignore[return-value]
