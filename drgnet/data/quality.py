"""Is a fundus photograph good enough to grade? Field of view, exposure, focus and resolution.

Screening programmes send ungradable photographs back for a retake rather than trusting a grade read from
them, so every screened photograph gets a gradability flag with the reasons a person can act on. The checks
are classical image statistics inside the field of view (numpy / OpenCV only):

- **Field of view**: a circular retina on a dark border was found (``find_fov``); without one the photograph
  is not scored at all.
- **Exposure**: the mean brightness (luma) inside the field of view lies within bounds, and not too much of
  it is clipped to black or to white.
- **Focus**: the spread of the Laplacian of the green channel (where vessels and lesions have their contrast),
  relative to the channel's mean so that exposure does not move it, at a fixed scale of the field of view.
- **Resolution**: the field of view is wide enough in pixels to show microaneurysms at all.

The thresholds were calibrated on every synthetic camera style at 128-1024 px, on ``skimage.data.retina()``
and on blurred, darkened and over-exposed versions of them (``tests/data/test_quality.py`` pins the cases):
well-exposed photographs measure brightness 75-121 and sharpness 15-32; a Gaussian blur of 2 px (at a
512 px field of view) brings sharpness below 7.1; darkening to 20 % brings brightness below 24; tripling the
exposure brings it above 200.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from drgnet.data.preprocess import FieldOfView, crop_to_fov

#: Focus is measured on the field of view resized (down only) to at most this many pixels across, so the
#: measure means the same blur relative to the retina whatever the camera's resolution.
QUALITY_WORK_SIZE = 512

#: Reasons a photograph can be ungradable, in the order they are reported.
REASONS: dict[str, str] = {
    "no_field_of_view": "no circular field of view found (not a fundus photograph, or far too dark)",
    "too_dark": "under-exposed: mean brightness inside the field of view below the minimum",
    "too_bright": "over-exposed: mean brightness inside the field of view above the maximum",
    "clipped_dark": "too much of the field of view is clipped to black",
    "clipped_bright": "too much of the field of view is clipped to white",
    "out_of_focus": "blurred: too little fine detail (Laplacian) inside the field of view",
    "low_resolution": "field of view too small in pixels to show microaneurysms",
}


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of a gradable photograph (8-bit levels unless stated)."""

    min_brightness: float = 30.0  # mean luma inside the FOV; well-exposed photographs measure 75-121
    max_brightness: float = 170.0  # washed out above; real photographs rarely exceed 130
    dark_level: int = 8  # a pixel at or below this luma is clipped to black
    bright_level: int = 250  # a pixel at or above this luma is clipped to white
    max_clipped_fraction: float = 0.10  # of the FOV, at either end
    min_sharpness: float = 8.0  # 100 * std(Laplacian of green) / mean(green); sharp photographs 15-32
    min_fov_diameter: float = 256.0  # pixels; below, a microaneurysm (~1/100 of the FOV) is under 3 px


@dataclass(frozen=True)
class ImageQuality:
    """The gradability verdict of one photograph and the measurements behind it.

    Attributes:
        gradable: True when no check failed.
        reasons: Keys of ``REASONS`` for every failed check, empty when gradable.
        fov_found: A circular field of view was found.
        brightness: Mean luma (0-255) inside the field of view.
        clipped_dark: Fraction of the field of view at or below ``dark_level``.
        clipped_bright: Fraction of the field of view at or above ``bright_level``.
        sharpness: Relative Laplacian spread of the green channel (see ``QualityThresholds.min_sharpness``).
        fov_diameter: Diameter of the field of view in pixels of the photograph.
    """

    gradable: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)
    fov_found: bool = True
    brightness: float = float("nan")
    clipped_dark: float = float("nan")
    clipped_bright: float = float("nan")
    sharpness: float = float("nan")
    fov_diameter: float = float("nan")

    def to_dict(self) -> dict[str, object]:
        return {
            "gradable": self.gradable,
            "quality_reasons": ",".join(self.reasons) or None,
            "fov_found": self.fov_found,
            "brightness": _round(self.brightness, 2),
            "clipped_dark": _round(self.clipped_dark, 4),
            "clipped_bright": _round(self.clipped_bright, 4),
            "sharpness": _round(self.sharpness, 3),
            "fov_diameter": _round(self.fov_diameter, 1),
        }


def _round(v: float, digits: int) -> float | None:
    return None if v != v else round(float(v), digits)  # NaN -> None (empty in CSV, null in JSON)


NO_FIELD_OF_VIEW = ImageQuality(gradable=False, reasons=("no_field_of_view",), fov_found=False)


def assess_quality(image: np.ndarray, fov: FieldOfView, thresholds: QualityThresholds | None = None) -> ImageQuality:
    """Measure exposure, focus and resolution inside a photograph's field of view.

    Args:
        image: ``(H, W, 3)`` uint8 RGB photograph at its own resolution.
        fov: Its field of view (``find_fov`` or ``Preprocessed.fov``).
        thresholds: Limits of a gradable photograph (default ``QualityThresholds()``).

    Returns:
        The verdict with its measurements.
    """
    t = thresholds or QualityThresholds()
    if not fov.found:
        return NO_FIELD_OF_VIEW
    crop = crop_to_fov(image, fov)
    inside = crop_to_fov(fov.mask.astype(np.uint8), fov)
    side = crop.shape[0]
    if side > QUALITY_WORK_SIZE:
        crop = cv2.resize(crop, (QUALITY_WORK_SIZE, QUALITY_WORK_SIZE), interpolation=cv2.INTER_AREA)
        inside = cv2.resize(inside, (QUALITY_WORK_SIZE, QUALITY_WORK_SIZE), interpolation=cv2.INTER_NEAREST)
        side = QUALITY_WORK_SIZE
    # Away from the rim: the FOV's own edge is the sharpest thing in any photograph, blurred or not.
    core = cv2.erode(inside, np.ones((3, 3), np.uint8), iterations=max(2, side // 64)).astype(bool)
    if core.sum() < 16:
        core = inside.astype(bool)
    luma = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[core].astype(np.float32)
    brightness = float(luma.mean())
    clipped_dark = float((luma <= t.dark_level).mean())
    clipped_bright = float((luma >= t.bright_level).mean())
    green = crop[..., 1].astype(np.float32)
    laplacian = cv2.Laplacian(green, cv2.CV_32F, ksize=3)[core]
    sharpness = float(100.0 * laplacian.std() / max(float(green[core].mean()), 1.0))
    diameter = 2.0 * float(fov.radius)

    reasons = []
    if brightness < t.min_brightness:
        reasons.append("too_dark")
    if brightness > t.max_brightness:
        reasons.append("too_bright")
    if clipped_dark > t.max_clipped_fraction:
        reasons.append("clipped_dark")
    if clipped_bright > t.max_clipped_fraction:
        reasons.append("clipped_bright")
    if sharpness < t.min_sharpness:
        reasons.append("out_of_focus")
    if diameter < t.min_fov_diameter:
        reasons.append("low_resolution")
    return ImageQuality(
        gradable=not reasons,
        reasons=tuple(reasons),
        fov_found=True,
        brightness=brightness,
        clipped_dark=clipped_dark,
        clipped_bright=clipped_bright,
        sharpness=sharpness,
        fov_diameter=diameter,
    )


__all__ = ["NO_FIELD_OF_VIEW", "QUALITY_WORK_SIZE", "REASONS", "ImageQuality", "QualityThresholds", "assess_quality"]
