"""Non-fundus rejection: the tests a detected field of view must pass to count as a colour fundus photograph.

Detection (``_fov_detect``) gathers the evidence at working resolution; this module owns the acceptance
thresholds and turns the evidence into a verdict, so tuning what counts as a fundus photograph happens here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drgnet.data.preprocess._fov_geometry import _disc_mask

# Acceptance thresholds of the "is this a fundus photograph" test, tuned on skimage.data.retina() and on the
# non-fundus photographs of scikit-image (chelsea, astronaut, coffee, ...); see tests/data/test_preprocess.py.
_MIN_FOV_COVERAGE = 0.05  # the retina fills at least this fraction of the photograph...
_MAX_FOV_COVERAGE = 0.97  # ...and leaves some dark border (corners at least)
_THRESHOLD_FRACTION = 0.15  # FOV threshold: border level + this fraction of (retina - border)
_MIN_CIRCLE_IOU = 0.90  # agreement between the bright region and the fitted (possibly clipped) disc
_MIN_CONTRAST = 10.0  # grey levels between the retina and the border around it
_MAX_BORDER_RATIO = 0.35  # border brightness / retina brightness
_MIN_BORDER_DARK = 0.90  # fraction of the border that is darker than the detection threshold
_MIN_RED_RATIO = 0.90  # mean red / max(mean green, mean blue) inside the FOV (greyscale photographs: 1.0)
_MIN_ARC_FRACTION = 0.25  # share of the circle's circumference seen as an edge (clipped FOVs show ~0.5)
_ARC_BINS = 90


@dataclass(frozen=True)
class _Detection:
    """FOV detection at working resolution, with the evidence the fundus test looks at."""

    cx: float
    cy: float
    radius: float
    y_cut: tuple[float, float]  # rows (inclusive, working resolution) outside which the FOV is cut
    x_cut: tuple[float, float]
    checks: dict[str, float]
    failures: list[str]
    geometry_ok: bool = False  # a circular FOV on a dark border was found, whatever its colours


class _NoDisc(Exception):
    """Detection stopped early: nothing disc-like to test further (the message says why)."""


@dataclass(frozen=True)
class _Candidate:
    """A circle fitted to the bright region, at working resolution, before the fundus tests."""

    small: np.ndarray  # (h, w, 3) uint8 working copy of the photograph
    bright: np.ndarray  # (h, w) float32 smoothed brightest channel
    comp: np.ndarray  # (h, w) bool bright region, holes filled
    threshold: float  # brightness separating border from retina
    circle: tuple[float, float, float]  # (cx, cy, r)
    arc: float  # share of the circumference seen as an edge
    y_cut: tuple[float, float]
    x_cut: tuple[float, float]


def judge(cand: _Candidate, checks: dict[str, float]) -> _Detection:
    """Test a candidate field of view: disc shape, a dark border around it, and retina-like colours.

    Raises:
        _NoDisc: There is no border region (or no inside) around the fitted circle to test.
    """
    cx, cy, r = cand.circle
    shape = cand.comp.shape
    disc = _disc_mask(shape, (cx, cy), r, cand.y_cut, cand.x_cut)
    union = np.count_nonzero(disc | cand.comp)
    iou = np.count_nonzero(disc & cand.comp) / union if union else 0.0
    checks["circle_iou"] = iou

    outside = ~_disc_mask(shape, (cx, cy), r * 1.03 + 1, cand.y_cut, cand.x_cut)
    inside = _disc_mask(shape, (cx, cy), max(1.0, r * 0.97 - 1), cand.y_cut, cand.x_cut) & cand.comp
    if not inside.any() or not outside.any():
        raise _NoDisc("no dark border around the bright region")
    border_level = float(np.median(cand.bright[outside]))
    retina_level = float(np.median(cand.bright[inside]))
    dark = float(np.mean(cand.bright[outside] <= cand.threshold))
    checks.update(border_ratio=border_level / max(retina_level, 1e-6), border_dark=dark)
    mean_rgb = cand.small.astype(np.float32)[inside].mean(axis=0)
    red_ratio = float(mean_rgb[0] / max(mean_rgb[1], mean_rgb[2], 1e-6))
    checks["red_ratio"] = red_ratio

    failures: list[str] = []
    if cand.arc < _MIN_ARC_FRACTION:
        failures.append(f"only {cand.arc:.0%} of a circular edge visible")
    if iou < _MIN_CIRCLE_IOU:
        failures.append(f"bright region is not a disc (overlap with fitted circle {iou:.2f})")
    if retina_level - border_level < _MIN_CONTRAST or checks["border_ratio"] > _MAX_BORDER_RATIO:
        failures.append(f"border not dark (border {border_level:.0f} vs retina {retina_level:.0f} grey levels)")
    if dark < _MIN_BORDER_DARK:
        failures.append(f"only {dark:.0%} of the border around the circle is dark")
    geometry_ok = not failures
    if red_ratio < _MIN_RED_RATIO:
        failures.append(
            "colours unlike a retina (mean RGB inside "
            + ", ".join(f"{v:.0f}" for v in mean_rgb)
            + "; a retina is red-dominant)"
        )
    return _Detection(float(cx), float(cy), float(r), cand.y_cut, cand.x_cut, checks, failures, geometry_ok)
