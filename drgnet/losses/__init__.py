"""Losses of the joint objective.

Shapes (B: batch, K: lesions, C: grades):
    lesion logits / targets / weights: ``(B, K, H, W)``; a pixel weight of 0 removes that pixel (ignore).
    grade logits: ``(B, C)``; grade targets ``(B,)`` long with ``-1`` meaning "no grade for this image".
"""

from drgnet.losses.constraint import attention_coverage_loss, symmetric_kl
from drgnet.losses.grading import grade_at_least_loss, grade_loss
from drgnet.losses.robust import (
    cross_entropy_per_sample,
    generalized_cross_entropy,
    small_loss_weights,
    soft_target_kl,
)
from drgnet.losses.segmentation import lesion_loss

__all__ = [
    "attention_coverage_loss",
    "cross_entropy_per_sample",
    "generalized_cross_entropy",
    "grade_at_least_loss",
    "grade_loss",
    "lesion_loss",
    "small_loss_weights",
    "soft_target_kl",
    "symmetric_kl",
]
