"""Multilabel lesion loss: soft Dice plus focal BCE, both restricted to weighted (non-ignored) pixels."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lesion_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    gamma: float = 2.0,
    pos_weight: float = 1.0,
    smooth: float = 1.0,
    dice_pairs: torch.Tensor | None = None,
    dice_over: str = "image",
) -> dict[str, torch.Tensor]:
    """Dice and focal terms of the lesion maps.

    Args:
        logits: ``(B, K, H, W)`` lesion logits.
        targets: ``(B, K, H, W)`` in {0, 1} (soft values allowed).
        weights: ``(B, K, H, W)`` non-negative pixel weights; 0 ignores a pixel (outside the field of view,
            a lesion nobody annotated, untouched pixels of a partial correction). Ignored pixels contribute
            neither loss nor gradient.
        gamma: Focal exponent; 0 gives weighted BCE.
        pos_weight: Extra weight on positive pixels in the focal/BCE term (lesions are rare).
        smooth: Dice smoothing, in pixels.
        dice_pairs: ``(B, K)`` bool: the (image, lesion) pairs the Dice term covers (default: every pair with a
            weighted pixel). Dice over a sparse label, say only painted strokes, is met by predicting "lesion"
            everywhere; the focal term alone is well defined there.
        dice_over: ``"image"``: one Dice per (image, lesion) pair, averaged; an image without that lesion is
            pushed to predict none of it at all, however faint the evidence. ``"batch"``: one Dice per lesion
            over all covered pairs of the batch together (the sums pooled), so each image's pixels count by
            their number, not each image alike.

    Returns:
        ``{"dice": ..., "focal": ...}``, each a scalar; zero (with a graph) when no pixel has weight.
    """
    if logits.shape != targets.shape or logits.shape != weights.shape:
        raise ValueError(
            f"lesion loss: logits {tuple(logits.shape)}, targets {tuple(targets.shape)} and weights "
            f"{tuple(weights.shape)} must match"
        )
    targets = targets.to(logits.dtype)
    weights = weights.to(logits.dtype)
    probs = torch.sigmoid(logits)

    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if gamma > 0:
        p_t = probs * targets + (1 - probs) * (1 - targets)
        bce = bce * (1 - p_t).pow(gamma)
    pixel_w = weights * (1 + (pos_weight - 1) * targets)
    total_w = weights.sum()
    focal = (bce * pixel_w).sum() / total_w.clamp_min(1.0)

    # Dice per (image, lesion) over weighted pixels; pairs with no weighted pixel are left out.
    inter = (probs * targets * weights).sum(dim=(2, 3))
    denom = (probs * weights).sum(dim=(2, 3)) + (targets * weights).sum(dim=(2, 3))
    present = weights.sum(dim=(2, 3)) > 0
    if dice_pairs is not None:
        present = present & dice_pairs.to(present.device)
    if dice_over == "image":
        dice = 1 - (2 * inter + smooth) / (denom + smooth)
        dice = (dice * present).sum() / present.sum().clamp_min(1)
    elif dice_over == "batch":
        covered = present.any(dim=0)  # (K,): lesions with at least one covered pair in the batch
        inter_k = (inter * present).sum(dim=0)
        denom_k = (denom * present).sum(dim=0)
        dice = 1 - (2 * inter_k + smooth) / (denom_k + smooth)
        dice = (dice * covered).sum() / covered.sum().clamp_min(1)
    else:
        raise ValueError(f"lesion loss: dice_over must be 'image' or 'batch', got {dice_over!r}")
    return {"dice": dice, "focal": focal}
