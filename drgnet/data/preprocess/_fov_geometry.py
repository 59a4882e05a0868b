"""Geometry of FOV detection: working resolution, circle fitting to boundary points, disc masks."""

from __future__ import annotations

import cv2
import numpy as np
from skimage import measure

#: FOV detection works on a copy whose longest side is at most this many pixels.
FOV_WORK_SIZE = 512


def _work_shape(h: int, w: int) -> tuple[int, int]:
    s = min(1.0, FOV_WORK_SIZE / max(h, w))
    return max(1, round(h * s)), max(1, round(w * s))


def _otsu(values: np.ndarray) -> float:
    v = np.clip(values, 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(v, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t)


def _boundary_points(comp: np.ndarray) -> np.ndarray:
    """Sub-pixel boundary of a mask, without the points that cannot lie on the circle: those on the image
    edge and those along the mask's extreme rows and columns (flat cuts of the camera's mask)."""
    h, w = comp.shape
    rows, cols = np.flatnonzero(comp.any(axis=1)), np.flatnonzero(comp.any(axis=0))
    padded = np.pad(comp.astype(np.float32), 1)
    contours = measure.find_contours(padded, 0.5)
    if not contours:
        return np.zeros((0, 2))
    pts = np.concatenate(contours) - 1.0  # (row, col) -> unpadded coordinates
    pts = pts[:, ::-1]  # (x, y)
    x, y = pts[:, 0], pts[:, 1]
    keep = (x > 0.0) & (x < w - 1.0) & (y > 0.0) & (y < h - 1.0)
    # A circle's extreme row is a short cap (about 2 * sqrt(2 r) pixels); a much longer one is a flat cut.
    half_w, half_h = (cols[-1] - cols[0] + 1) / 2.0, (rows[-1] - rows[0] + 1) / 2.0
    cap_w, cap_h = 4.0 * np.sqrt(2.0 * half_w) + 2, 4.0 * np.sqrt(2.0 * half_h) + 2
    if comp[rows[0]].sum() > cap_w:
        keep &= y > rows[0] + 1.5
    if comp[rows[-1]].sum() > cap_w:
        keep &= y < rows[-1] - 1.5
    if comp[:, cols[0]].sum() > cap_h:
        keep &= x > cols[0] + 1.5
    if comp[:, cols[-1]].sum() > cap_h:
        keep &= x < cols[-1] - 1.5
    return pts[keep]


def _fit_circle(points: np.ndarray) -> tuple[float, float, float] | None:
    """Algebraic (Kasa) fit refined by a few Gauss-Newton steps on the geometric distance."""
    x, y = points[:, 0], points[:, 1]
    a = np.column_stack([x, y, np.ones_like(x)])
    b = x * x + y * y
    try:
        sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    except np.linalg.LinAlgError:
        return None
    cx, cy = sol[0] / 2.0, sol[1] / 2.0
    r2 = sol[2] + cx * cx + cy * cy
    if not np.isfinite(r2) or r2 <= 0:
        return None
    c = np.array([cx, cy, np.sqrt(r2)])
    for _ in range(5):
        dx, dy = x - c[0], y - c[1]
        d = np.hypot(dx, dy)
        d[d == 0] = 1e-9
        jac = np.column_stack([-dx / d, -dy / d, -np.ones_like(d)])
        step, *_ = np.linalg.lstsq(jac, -(d - c[2]), rcond=None)
        c += step
        if np.abs(step).max() < 1e-3:
            break
    if not np.all(np.isfinite(c)) or c[2] <= 0:
        return None
    return float(c[0]), float(c[1]), float(c[2])


def _fit_circle_robust(points: np.ndarray) -> tuple[tuple[float, float, float], np.ndarray] | None:
    """Fit, then refit on the points near the circle; chords lie inside it and camera notches outside."""
    keep = points
    circle = _fit_circle(keep)
    for tol in (0.10, 0.05, 0.025, 0.015, 0.015):
        if circle is None:
            return None
        cx, cy, r = circle
        resid = np.hypot(points[:, 0] - cx, points[:, 1] - cy) - r
        near = np.abs(resid) <= max(tol * r, 1.0)
        if near.sum() < 12:
            return None
        keep = points[near]
        circle = _fit_circle(keep)
    if circle is None:
        return None
    return circle, keep


def _disc_mask(
    shape: tuple[int, int],
    center: tuple[float, float],
    radius: float,
    y_cut: tuple[float, float] = (-np.inf, np.inf),
    x_cut: tuple[float, float] = (-np.inf, np.inf),
) -> np.ndarray:
    """Pixels whose centre lies inside the circle and within the cut rows / columns."""
    h, w = shape
    cx, cy = center
    ys = np.arange(h, dtype=np.float64)
    half = np.sqrt(np.maximum(radius * radius - (ys - cy) ** 2, 0.0))
    inside_rows = (np.abs(ys - cy) <= radius) & (ys >= y_cut[0]) & (ys <= y_cut[1])
    lo = np.maximum(cx - half, x_cut[0])
    hi = np.minimum(cx + half, x_cut[1])
    xs = np.arange(w, dtype=np.float64)
    mask = (xs[None, :] >= lo[:, None]) & (xs[None, :] <= hi[:, None])
    mask &= inside_rows[:, None]
    return mask
