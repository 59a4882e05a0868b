"""The lesion-grade consistency constraint.

Two terms tie the lesion branch to the grade: the grade predicted from lesion descriptors alone must agree with
the fused grade (symmetric KL, gradients into both), and where lesion masks exist the high-level attention must
put its mass on lesions. The first is what lets a grade-only correction teach the lesion branch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``KL(a||b) + KL(b||a)`` between two categorical distributions given as logits."""
    log_a = F.log_softmax(logits_a, dim=1)
    log_b = F.log_softmax(logits_b, dim=1)
    kl_ab = (log_a.exp() * (log_a - log_b)).sum(dim=1)
    kl_ba = (log_b.exp() * (log_b - log_a)).sum(dim=1)
    return (kl_ab + kl_ba).mean()


def attention_coverage_loss(
    attention: torch.Tensor, lesion_masks: torch.Tensor, lesion_weights: torch.Tensor
) -> torch.Tensor:
    """Attention mass outside annotated lesions, for images whose masks show at least one lesion.

    Args:
        attention: ``(B, 1, h, w)``, each map summing to 1.
        lesion_masks: ``(B, K, H, W)`` targets.
        lesion_weights: ``(B, K, H, W)`` pixel weights; only annotated (weight > 0) positives count.

    Returns:
        Scalar in [0, 1]: the mean over qualifying images of ``1 - attention mass on lesions``; zero when no
        image qualifies.
    """
    union = ((lesion_masks > 0.5) & (lesion_weights > 0)).any(dim=1, keepdim=True).to(attention.dtype)
    union = F.adaptive_max_pool2d(union, attention.shape[-2:])
    has_lesion = union.flatten(1).amax(dim=1) > 0
    if not bool(has_lesion.any()):
        return attention.sum() * 0.0
    covered = (attention * union).flatten(1).sum(dim=1)
    return (1 - covered)[has_lesion].mean()
