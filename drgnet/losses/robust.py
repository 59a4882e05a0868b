"""Losses for learning from noisy clinician corrections.

- ``generalized_cross_entropy``: ``(1 - p_y^q) / q`` (Zhang & Sabuncu, 2018). ``q -> 0`` is cross-entropy,
  ``q = 1`` is mean absolute error; in between, a confidently contradicted label (probably a wrong one) costs at
  most ``1 / q`` instead of growing without bound, so a few flipped grades cannot dominate the gradient.
- ``small_loss_weights``: per batch, drop the highest-loss fraction of the eligible (corrected) samples; deep
  networks fit clean labels before noisy ones, so the largest losses are the likeliest label errors.
- ``soft_target_kl``: KL divergence to a teacher's (e.g. EMA model's) grade distribution, the consistency term.

Shapes as in :mod:`drgnet.losses`: logits ``(B, C)``; hard targets ``(B,)`` long with ``-1`` = no grade, or soft
targets ``(B, C)`` (rows summing to 1; an all-zero row = no grade).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def generalized_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """Per-sample GCE ``(B,)``; samples without a grade get 0 (and no gradient).

    Args:
        logits: ``(B, C)``.
        targets: ``(B,)`` long grades (``-1``: none) or ``(B, C)`` soft grade distributions.
        q: In (0, 1]; smaller is closer to cross-entropy, larger more robust.
    """
    if not 0.0 < q <= 1.0:
        raise ValueError(f"GCE q must be in (0, 1], got {q}")
    probs = torch.softmax(logits.float(), dim=1)
    if targets.ndim == 1:
        known = targets >= 0
        p_y = probs.gather(1, targets.clamp_min(0).long()[:, None])[:, 0]
    else:
        known = targets.sum(dim=1) > 0
        p_y = (probs * targets.to(probs.dtype)).sum(dim=1)
    loss = (1 - p_y.clamp_min(1e-7).pow(q)) / q
    return torch.where(known, loss, torch.zeros_like(loss))


def cross_entropy_per_sample(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy ``(B,)`` with the same target forms as :func:`generalized_cross_entropy`."""
    log_p = F.log_softmax(logits.float(), dim=1)
    if targets.ndim == 1:
        known = targets >= 0
        loss = -log_p.gather(1, targets.clamp_min(0).long()[:, None])[:, 0]
    else:
        known = targets.sum(dim=1) > 0
        loss = -(log_p * targets.to(log_p.dtype)).sum(dim=1)
    return torch.where(known, loss, torch.zeros_like(loss))


def small_loss_weights(
    losses: torch.Tensor, drop_fraction: float, eligible: torch.Tensor | None = None
) -> torch.Tensor:
    """0/1 weights ``(B,)`` that drop the ``drop_fraction`` highest losses among ``eligible`` samples.

    Samples that are not eligible (replayed training data, images without a grade) always keep weight 1; the
    number dropped is ``floor(drop_fraction * n_eligible)``, so a batch with a single correction drops nothing.

    Args:
        losses: ``(B,)`` per-sample losses (detached or not; the weights carry no gradient).
        drop_fraction: In [0, 1).
        eligible: ``(B,)`` bool; None: every sample.
    """
    if not 0.0 <= drop_fraction < 1.0:
        raise ValueError(f"drop_fraction must be in [0, 1), got {drop_fraction}")
    losses = losses.detach()
    weights = torch.ones_like(losses)
    idx = torch.arange(len(losses), device=losses.device)
    if eligible is not None:
        idx = idx[eligible.bool()]
    n_drop = int(drop_fraction * len(idx))
    if n_drop == 0:
        return weights
    worst = idx[torch.topk(losses[idx], n_drop).indices]
    weights[worst] = 0.0
    return weights


def soft_target_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample ``KL(teacher || student)`` ``(B,)``; the teacher is detached."""
    teacher = torch.softmax(teacher_logits.detach().float(), dim=1)
    log_s = F.log_softmax(student_logits.float(), dim=1)
    return (teacher * (teacher.clamp_min(1e-12).log() - log_s)).sum(dim=1)
