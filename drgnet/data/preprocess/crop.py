"""Cutting the square around the field of view, or padding a photograph to a square."""

from __future__ import annotations

import numpy as np

from drgnet.data.preprocess.fov import FieldOfView

#: Default margin around the FOV circle kept by ``crop_to_fov`` / ``preprocess``, as a fraction of the radius.
FOV_MARGIN = 0.02


def _fov_box(fov: FieldOfView, margin: float) -> tuple[int, int, int, int]:
    """Square box ``(x0, y0, x1, y1)`` centred on the FOV circle; may extend beyond the image."""
    cx, cy = fov.center
    side = max(1, int(np.ceil(2 * fov.radius * (1.0 + margin))))
    x0 = int(round(cx + 0.5 - side / 2.0))
    y0 = int(round(cy + 0.5 - side / 2.0))
    return x0, y0, x0 + side, y0 + side


def _square_box(h: int, w: int) -> tuple[int, int, int, int]:
    side = max(h, w)
    x0, y0 = -((side - w) // 2), -((side - h) // 2)
    return x0, y0, x0 + side, y0 + side


def _cut_box(a: np.ndarray, box: tuple[int, int, int, int], fill: float | tuple[float, ...] = 0) -> np.ndarray:
    """``a[y0:y1, x0:x1]`` where the parts of the box outside ``a`` are filled with ``fill``."""
    x0, y0, x1, y1 = box
    h, w = a.shape[:2]
    out = np.empty((y1 - y0, x1 - x0) + a.shape[2:], a.dtype)
    out[...] = np.asarray(fill, dtype=a.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = a[sy0:sy1, sx0:sx1]
    return out


def crop_to_fov(
    image: np.ndarray, fov: FieldOfView, margin: float = FOV_MARGIN, fill: int | tuple[int, ...] = 0
) -> np.ndarray:
    """Cut the square around the FOV circle, centred on it; where the photograph clips the circle, fill.

    Args:
        image: ``(H, W, ...)`` array at the resolution ``fov`` was found at.
        fov: The photograph's field of view.
        margin: Extra border around the circle, as a fraction of the radius.
        fill: Value of the pixels outside the photograph (black, like a fundus border).

    Returns:
        A square array of side ``ceil(2 * radius * (1 + margin))``.
    """
    if image.shape[:2] != fov.mask.shape:
        raise ValueError(f"image is {image.shape[:2]} but the field of view was found on {fov.mask.shape}")
    return _cut_box(image, _fov_box(fov, margin), fill)


def pad_to_square(image: np.ndarray, fill: int | tuple[int, ...] = 0) -> np.ndarray:
    """Pad the shorter side evenly (extra pixel at the bottom / right) so the image becomes square."""
    return _cut_box(image, _square_box(*image.shape[:2]), fill)
