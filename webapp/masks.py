"""Merging a clinician's canvas strokes onto a predicted lesion mask, at the photograph's full resolution.

The canvas shows the photograph scaled down; strokes come back at canvas resolution as "add" (painted) and
"remove" (erased) masks. They are scaled up to the photograph's size with nearest-neighbour sampling (a stroke
stays a stroke, no blurred edge counts half) and merged: ``corrected = (predicted | add) & ~remove``.
"""

from __future__ import annotations

import cv2
import numpy as np

from feedback import masks as feedback_masks

#: Canvas stroke colours (RGB): painting adds lesion pixels, erasing removes them.
PAINT_RGB = (0, 255, 0)
ERASE_RGB = (255, 0, 255)


def scale_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A boolean ``(H, W)`` mask resized to ``shape`` (height, width) with nearest-neighbour sampling."""
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 2:
        raise ValueError(f"a stroke mask is (H, W), got shape {mask.shape}")
    h, w = shape
    if mask.shape == (h, w):
        return mask
    return cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


def merge_full(predicted: np.ndarray, add: np.ndarray | None = None, remove: np.ndarray | None = None) -> np.ndarray:
    """The corrected mask ``(predicted | add) & ~remove`` at the predicted mask's resolution.

    Args:
        predicted: ``(H, W)`` predicted lesion mask (bool or 0/1) at the photograph's resolution.
        add: Painted pixels, at any resolution (scaled to ``(H, W)``), or None.
        remove: Erased pixels, at any resolution, or None. Erasing wins where both are set.

    Returns:
        ``(H, W)`` bool mask.
    """
    pred = np.asarray(predicted).astype(bool)
    if pred.ndim != 2:
        raise ValueError(f"a predicted mask is (H, W), got shape {pred.shape}")
    none = np.zeros(pred.shape, bool)
    add_full = scale_mask(add, pred.shape) if add is not None else none
    remove_full = scale_mask(remove, pred.shape) if remove is not None else none
    # The merge itself is the feedback layer's (one convention for the app and the retraining job).
    return feedback_masks.merge_full(pred, add_full, remove_full)


def strokes_from_canvas(rgba: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Split the canvas's RGBA drawing into (add, remove) boolean masks at canvas resolution.

    Paint strokes are green, erase strokes magenta; a pixel counts where the stroke is at least half opaque. Returns
    None when nothing is drawn.
    """
    if rgba is None:
        return None
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"canvas image data is (H, W, 4), got shape {rgba.shape}")
    drawn = rgba[..., 3] >= 128
    if not drawn.any():
        return None
    g = rgba[..., 1].astype(np.int16)
    r = rgba[..., 0].astype(np.int16)
    add = drawn & (g > r)
    remove = drawn & ~add
    return add, remove
