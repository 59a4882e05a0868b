"""The field of view (FOV): the circular region of a fundus photograph that shows the retina."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from drgnet.data.preprocess._fov_detect import _detect
from drgnet.data.preprocess._fov_geometry import _disc_mask, _work_shape


class NotFundusError(ValueError):
    """The image does not look like a colour fundus photograph (no circular field of view found)."""


@dataclass(frozen=True)
class FieldOfView:
    """The circular region of a fundus photograph that shows the retina.

    Attributes:
        mask: ``(H, W)`` bool, True inside the field of view (the fitted circle, cut flat where the
            photograph clips it, and never outside the image).
        center: Circle centre ``(cx, cy)`` in pixel coordinates (x right, y down; pixel centres at integers).
            May lie outside the image for strongly clipped photographs.
        radius: Circle radius in pixels.
        bbox: ``(x0, y0, x1, y1)`` of ``mask``, ``x1``/``y1`` exclusive.
        clipped_top_bottom: True when the circle is cut flat at the top and/or bottom (by the photograph's
            edge or by the camera's mask), as many cameras do.
        coverage: Fraction of the photograph's pixels inside the field of view.
        found: False when no field of view was detected and the whole image stands in for it
            (only with ``find_fov(..., check_fundus=False)``).
    """

    mask: np.ndarray = field(repr=False)
    center: tuple[float, float]
    radius: float
    bbox: tuple[int, int, int, int]
    clipped_top_bottom: bool
    coverage: float
    found: bool = True


def find_fov(image: np.ndarray, source: str = "image", check_fundus: bool = True) -> FieldOfView:
    """Find the circular field of view of a fundus photograph.

    The retina is a bright disc on a dark border, often cut flat at the top and bottom. On a copy whose
    longest side is ``FOV_WORK_SIZE`` the brightest channel is smoothed and thresholded between the border's
    and the retina's brightness; the largest bright component (holes filled, thin bridges to burnt-in text
    cut) gives the boundary, and a circle is fitted to the boundary points that are neither on the image
    edge nor on flat cuts (iteratively dropping points that fall inside the circle, such as chords, or
    outside it, such as the notch some cameras print). Results are scaled back to full resolution.

    Args:
        image: ``(H, W, 3)`` uint8 RGB photograph (any size).
        source: Name of the photograph for error messages, e.g. its file name.
        check_fundus: Raise ``NotFundusError`` when the photograph does not look like a fundus photograph.
            When False, a circular field of view on a dark border is returned whatever its colours (e.g.
            red-free photographs), and any other image gets one covering the whole image (``found=False``).

    Returns:
        The field of view at the photograph's resolution.

    Raises:
        NotFundusError: ``check_fundus`` is True and no circular field of view on a dark border was found.
    """
    image = _check_image(image, source)
    h, w = image.shape[:2]
    det = _detect(image)
    if det.failures and check_fundus:
        raise NotFundusError(
            f"{source}: not a fundus photograph (no circular field of view found: "
            f"{'; '.join(det.failures)}). Pass check_fundus=False to use the whole image."
        )
    if not det.geometry_ok:
        return _whole_image_fov(h, w)
    wh, ww = _work_shape(h, w)
    sx, sy = w / ww, h / wh
    cx, cy, r = _to_full(det.cx, sx), _to_full(det.cy, sy), det.radius * (sx + sy) / 2.0
    y_lo, y_hi = (_to_full(v, sy) for v in det.y_cut)
    x_lo, x_hi = (_to_full(v, sx) for v in det.x_cut)
    mask = _disc_mask((h, w), (cx, cy), r, (y_lo, y_hi), (x_lo, x_hi))
    if not mask.any():
        if check_fundus:
            raise NotFundusError(f"{source}: not a fundus photograph (field of view is empty)")
        return _whole_image_fov(h, w)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    bbox = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    clipped = bool(cy - r < bbox[1] - 0.5 - 0.01 * r or cy + r > bbox[3] - 0.5 + 0.01 * r)
    return FieldOfView(
        mask=mask,
        center=(cx, cy),
        radius=r,
        bbox=bbox,
        clipped_top_bottom=clipped,
        coverage=float(mask.mean()),
    )


def _check_image(image: np.ndarray, source: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{source}: expected an (H, W, 3) uint8 RGB image (see to_rgb_uint8), got {got}")
    if min(image.shape[:2]) < 8:
        raise ValueError(f"{source}: image is too small ({image.shape[1]}x{image.shape[0]} pixels)")
    return image


def _whole_image_fov(h: int, w: int) -> FieldOfView:
    return FieldOfView(
        mask=np.ones((h, w), bool),
        center=((w - 1) / 2.0, (h - 1) / 2.0),
        radius=max(h, w) / 2.0,
        bbox=(0, 0, w, h),
        clipped_top_bottom=False,
        coverage=1.0,
        found=False,
    )


def _to_full(v: float, scale: float) -> float:
    # Pixel centres sit at integers at both resolutions; cv2.resize maps centres the same way.
    return (v + 0.5) * scale - 0.5
