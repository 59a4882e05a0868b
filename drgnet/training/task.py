"""Training tasks: a batch in, a dict of named losses out (``"loss"`` is what gets back-propagated).

The loop stays generic; the joint objective here, and later the transfer and feedback objectives, plug in
as tasks.

Batch keys (tensors):
    ``image``: ``(B, 3, H, W)`` float in [0, 1].
    ``masks``: ``(B, K, H, W)`` lesion targets.
    ``mask_weights``: ``(B, K, H, W)`` pixel weights, 0 = ignore (unannotated lesion, outside the field).
    ``grade``: ``(B,)`` long, -1 for no grade.
    ``sample_weight`` (optional): ``(B,)`` per-image weight of the grade loss.
    ``grade_min`` (optional): ``(B,)`` long; an ungraded image with ``grade_min > 0`` is known to have at least
    that grade (``drgnet.training.views``), taught as ``-log P(grade >= grade_min)``.
"""

from __future__ import annotations

import torch
from torch import nn

from drgnet.config import LossConfig
from drgnet.losses import attention_coverage_loss, grade_at_least_loss, grade_loss, lesion_loss, symmetric_kl
from drgnet.model import DRGNet, ModelOutput


def lesion_terms(
    output: ModelOutput, batch: dict[str, torch.Tensor], cfg: LossConfig, dice_pairs: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Dice and focal terms of the lesion maps against ``masks``, pixels weighted by ``mask_weights``.

    ``dice_pairs``: ``(B, K)`` booleans, the (image, lesion) pairs the Dice term counts (default: all).
    """
    return lesion_loss(
        output.lesion_logits,
        batch["masks"],
        batch["mask_weights"],
        gamma=cfg.lesion_focal_gamma,
        pos_weight=cfg.lesion_pos_weight,
        dice_pairs=dice_pairs,
        dice_over=cfg.lesion_dice_over,
    )


class JointTask(nn.Module):
    """Lesion segmentation + grading + the lesion-grade constraint."""

    def __init__(self, model: DRGNet, loss: LossConfig | None = None) -> None:
        super().__init__()
        self.model = model
        self.loss_config = loss or LossConfig()

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        output = self.model(batch["image"])
        return self.losses(output, batch)

    def losses(self, output: ModelOutput, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.loss_config
        seg = lesion_terms(output, batch, cfg)
        grades = batch["grade"]
        sample_weight = batch.get("sample_weight")
        grade = grade_loss(
            output.grade_logits,
            grades,
            kind=cfg.grade_loss,
            ordinal_weight=cfg.ordinal_weight,
            label_smoothing=cfg.label_smoothing,
            sample_weights=sample_weight,
            gce_q=cfg.gce_q,
        )
        out = {
            "lesion_dice": seg["dice"],
            "lesion_focal": seg["focal"],
            "grade": grade,
        }
        total = cfg.lesion_weight * (seg["dice"] + seg["focal"]) + cfg.grade_weight * grade
        if "grade_min" in batch:
            out["grade_at_least"] = grade_at_least_loss(output.grade_logits, batch["grade_min"])
            total = total + cfg.grade_weight * out["grade_at_least"]
        if self.model.config.lesion_grade_constraint:
            out["lesion_grade"] = grade_loss(output.lesion_grade_logits, grades, kind="ce")
            out["constraint"] = symmetric_kl(output.grade_logits, output.lesion_grade_logits)
            out["attention"] = attention_coverage_loss(output.attention, batch["masks"], batch["mask_weights"])
            total = (
                total
                + cfg.lesion_grade_weight * out["lesion_grade"]
                + cfg.constraint_weight * out["constraint"]
                + cfg.attention_weight * out["attention"]
            )
        out["loss"] = total
        return out
