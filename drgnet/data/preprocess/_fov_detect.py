"""FOV detection at working resolution: the bright region, the circle fitted to its edge, then the fundus tests."""

from __future__ import annotations

import cv2
import numpy as np

from drgnet.data.preprocess._fov_geometry import _boundary_points, _fit_circle_robust, _otsu, _work_shape
from drgnet.data.preprocess.fundus_check import (
    _ARC_BINS,
    _MAX_FOV_COVERAGE,
    _MIN_CONTRAST,
    _MIN_FOV_COVERAGE,
    _THRESHOLD_FRACTION,
    _Candidate,
    _Detection,
    _NoDisc,
    judge,
)


def _detect(image: np.ndarray) -> _Detection:
    h, w = image.shape[:2]
    wh, ww = _work_shape(h, w)
    small = cv2.resize(image, (ww, wh), interpolation=cv2.INTER_AREA) if (wh, ww) != (h, w) else image
    # The brightest channel: red for a colour fundus, but also fine for greyscale or green-tinted cameras.
    # A median (not Gaussian) filter removes noise and JPEG artefacts without moving the edge.
    bright = cv2.medianBlur(small.max(axis=2), 5 if min(wh, ww) >= 100 else 3).astype(np.float32)
    checks: dict[str, float] = {}
    try:
        comp, threshold = _bright_region(bright, checks)
        return judge(_fit_disc(small, bright, comp, threshold, checks), checks)
    except _NoDisc as exc:
        return _Detection(0.0, 0.0, 0.0, (0.0, 0.0), (0.0, 0.0), checks, [str(exc)])


def _bright_region(bright: np.ndarray, checks: dict[str, float]) -> tuple[np.ndarray, float]:
    """The largest bright component (holes filled) and the threshold that separated it from the border."""
    # The border fills the corners (over 2% of any photograph with a visible circle); Otsu separates it from
    # the retina, whose typical level is then the median of the bright side.
    border = float(np.percentile(bright, 2))
    above = bright[bright > _otsu(bright)]
    retina = float(np.median(above)) if above.size else border
    checks["contrast"] = retina - border
    if retina - border < _MIN_CONTRAST:
        raise _NoDisc(f"no bright region on a dark border, brightness range {retina - border:.0f} grey levels")
    # Low in the range, so the dim rim of a vignetted or under-exposed retina stays inside.
    threshold = border + _THRESHOLD_FRACTION * (retina - border)
    bw = (bright > threshold).astype(np.uint8)
    # Opening cuts thin bridges between the retina and burnt-in text or eyelash glare.
    k = max(1, round(max(bright.shape) / 100))
    bw = cv2.morphologyEx(bw, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1,) * 2))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bw, connectivity=8)
    if n < 2:
        raise _NoDisc("no bright region")
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    component = (labels == largest).astype(np.uint8)
    contours, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    component = np.zeros_like(component)
    cv2.drawContours(component, contours, -1, 1, thickness=cv2.FILLED)  # fills holes (dark lesions, vessels)
    comp = component.astype(bool)
    coverage = float(comp.mean())
    checks["coverage"] = coverage
    if coverage < _MIN_FOV_COVERAGE:
        raise _NoDisc(f"bright region covers only {coverage:.0%} of the image")
    if coverage > _MAX_FOV_COVERAGE:
        raise _NoDisc(f"no dark border: the bright region covers {coverage:.0%} of the image")
    return comp, threshold


def _fit_disc(
    small: np.ndarray, bright: np.ndarray, comp: np.ndarray, threshold: float, checks: dict[str, float]
) -> _Candidate:
    """Fit a circle to the region's edge and find where the camera cut it flat."""
    points = _boundary_points(comp)
    if len(points) < 12:
        raise _NoDisc("too few edge points to fit a circle")
    circle = _fit_circle_robust(points)
    if circle is None:
        raise _NoDisc("edge is not circular")
    (cx, cy, r), inliers = circle
    angles = np.arctan2(inliers[:, 1] - cy, inliers[:, 0] - cx)
    bins = np.floor((angles + np.pi) / (2 * np.pi) * _ARC_BINS).astype(int) % _ARC_BINS
    arc = len(np.unique(bins)) / _ARC_BINS
    checks["arc"] = arc
    rows, cols = np.flatnonzero(comp.any(axis=1)), np.flatnonzero(comp.any(axis=0))
    # Flat cuts: the component ends before the circle does. Cut half a pixel outside the last row.
    tol = max(1.5, 0.015 * r)
    y_cut = (
        rows[0] - 0.5 if cy - r < rows[0] - tol else -np.inf,
        rows[-1] + 0.5 if cy + r > rows[-1] + tol else np.inf,
    )
    x_cut = (
        cols[0] - 0.5 if cx - r < cols[0] - tol else -np.inf,
        cols[-1] + 0.5 if cx + r > cols[-1] + tol else np.inf,
    )
    return _Candidate(small, bright, comp, threshold, (cx, cy, r), arc, y_cut, x_cut)
