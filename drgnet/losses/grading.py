"""Grade loss: cross-entropy, optionally ordinal-aware."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from drgnet.losses.robust import generalized_cross_entropy

GRADE_LOSSES = ("ce", "ordinal", "gce")


def grade_loss(
    logits: torch.Tensor,
    grades: torch.Tensor,
    kind: str = "ordinal",
    ordinal_weight: float = 0.5,
    label_smoothing: float = 0.0,
    sample_weights: torch.Tensor | None = None,
    gce_q: float = 0.7,
) -> torch.Tensor:
    """Loss of grade logits against ICDR grades; ``grades == -1`` marks images without a grade.

    ``"ordinal"`` adds the squared distance between the expected grade (under the predicted distribution) and
    the true grade, scaled to [0, 1]: predicting 3 for a 0 costs more than predicting 1, as in the quadratic
    weighted kappa we report. ``"gce"`` is the noise-robust generalised cross-entropy (``gce_q``), for grades that
    may be wrong (clinician corrections).
    """
    if kind not in GRADE_LOSSES:
        raise ValueError(f"unknown grade loss {kind!r}; choose one of {', '.join(GRADE_LOSSES)}")
    known = grades >= 0
    if not bool(known.any()):
        return logits.sum() * 0.0
    logits, target = logits[known], grades[known]
    if kind == "gce":
        loss = generalized_cross_entropy(logits, target, q=gce_q)
    else:
        loss = F.cross_entropy(logits, target, reduction="none", label_smoothing=label_smoothing)
    if kind == "ordinal":
        num = logits.shape[1]
        levels = torch.arange(num, device=logits.device, dtype=logits.dtype)
        expected = (torch.softmax(logits, dim=1) * levels).sum(dim=1)
        loss = loss + ordinal_weight * ((expected - target.to(logits.dtype)) / (num - 1)).pow(2)
    if sample_weights is not None:
        w = sample_weights[known].to(loss.dtype)
        return (loss * w).sum() / w.sum().clamp_min(1e-6)
    return loss.mean()


def grade_at_least_loss(logits: torch.Tensor, grade_min: torch.Tensor) -> torch.Tensor:
    """``-log P(grade >= grade_min)`` over the images with ``grade_min > 0``: what an ungraded photograph known
    to show DR (every photograph of IDRiD's lesion set) can teach the grade head without inventing its grade.

    Args:
        logits: ``(B, C)`` grade logits.
        grade_min: ``(B,)`` long; 0 (or less) leaves an image out.
    """
    rows = grade_min > 0
    if not bool(rows.any()):
        return logits.sum() * 0.0
    log_probs = torch.log_softmax(logits[rows].float(), dim=1)
    levels = torch.arange(logits.shape[1], device=logits.device)
    allowed = levels[None, :] >= grade_min[rows][:, None]
    return -log_probs.masked_fill(~allowed, float("-inf")).logsumexp(dim=1).mean()
