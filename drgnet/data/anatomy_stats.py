"""Anatomy statistics of a fundus photograph: how large and bright its optic disc is, how wide and dark its vessels.

The same measurement runs on real photographs and on synthetic cohorts, so the generator's disc and vessel tree can
be calibrated against real photographs and a test can hold them there (``lesion_stats`` does the same for lesions).
Every photograph is first cut to its field of view (``preprocess.find_fov``) and resized so that the field's
diameter is ``NORMALISED_WIDTH`` pixels; all lengths below are pixels at that scale (per mille of the FOV diameter,
nearly).

- **Optic disc.** The brightest large blob of the green + red channels, blurred at about a third of a disc's size
  and relative to a much wider surround (so neither uneven illumination nor small bright lesions win). Its edge is
  found on 48 rays from the centre, on the green channel with the dark vessels closed away: where the profile first
  falls a third of the way from the disc's brightest level down to the background. Reported: the **disc diameter**
  as a share of the FOV diameter (median edge radius over rays, doubled), the **disc brightness** (green inside 0.6
  of that radius over green in a ring 1.5-2.5 radii out) and the **rim width**, the width in pixels of a linear
  ramp with the rim's median height and steepest slope (small = a sharp rim).
- **Vessels.** A black top-hat of the lightly smoothed green channel (closing wider than the widest vessel),
  relative to the local background, thresholded at ``VESSEL_DEPTH``; specks are dropped. Reported: the **vessel
  area fraction** of the field (the rim of the field and the disc left out), the **vessel contrast** (median depth
  under the local background, as a fraction, on the centre lines of the segmented vessels 1-3 disc diameters from
  the disc) and the **vessel calibre** per distance band from the disc centre (0.5-1, 1-2 and 2-3 disc
  diameters): the 90th percentile of the segmented width along the centre lines, i.e. the main vessels' width.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from drgnet.data.preprocess import find_fov
from drgnet.data.preprocess.crop import crop_to_fov

__all__ = [
    "BANDS",
    "NORMALISED_WIDTH",
    "REAL_PHOTOGRAPHS",
    "STATISTICS",
    "AnatomySummary",
    "PhotoAnatomy",
    "format_table",
    "measure_image",
    "measure_folder",
    "measure_real_photographs",
    "summarise",
]

#: Diameter of the field of view after normalisation, pixels.
NORMALISED_WIDTH = 1024
#: Distance bands from the disc centre for the vessel calibre, in disc diameters.
BANDS: tuple[tuple[float, float], ...] = ((0.5, 1.0), (1.0, 2.0), (2.0, 3.0))
#: A pixel is vessel when it is this much darker than its local background (fraction of the background green).
VESSEL_DEPTH = 0.07
#: Typical disc radius used to scale the search, pixels at ``NORMALISED_WIDTH`` (a disc is about 1/7 of a
#: 45-degree field).
_DISC_R = 70.0
#: Closing that removes every vessel (wider than the widest one), pixels.
_VESSEL_CLOSE = 31
#: Connected vessel pieces smaller than this (pixels) are noise or dots, not vessels.
_MIN_PIECE = 250


@dataclass
class PhotoAnatomy:
    """The anatomy statistics of one photograph (lengths in pixels at ``NORMALISED_WIDTH``)."""

    name: str
    disc_xy: tuple[float, float]  # centre, pixels of the normalised field (x right, y down)
    disc_diameter: float  # share of the FOV diameter
    disc_brightness: float  # green inside the disc over green around it
    rim_width: float  # pixels; width of a linear ramp with the rim's height and steepest slope
    vessel_fraction: float  # share of the field (rim and disc left out) segmented as vessel
    vessel_contrast: float  # median depth of vessel centre lines under the background, fraction
    calibre: tuple[float | None, ...]  # per BANDS: p90 vessel width, pixels

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AnatomySummary:
    """Medians (and ranges) of ``PhotoAnatomy`` values over photographs."""

    photos: int
    values: dict[str, tuple[float, float, float]]  # statistic -> (min, median, max)

    def median(self, key: str) -> float:
        return self.values[key][1]


#: Real reference values: ``drgnet synth-stats --anatomy --real`` (this module on every real photograph of this
#: machine, the realism benchmark's set), 2026-12-07: IDRiD_01-04 (``../shared/data/idrid-train4``, CC BY 4.0),
#: the retinalysis sdists' samples DRIVE_22, DRIVE_40, CHASEDB1_08L, CHASEDB1_12R, HRF_04_g, HRF_07_dr, issue_2 and
#: scikit-image's retina.jpg; 12 photographs (PALM_TR_P0185, cropped, issue_1 and sample_dark left out: no circular
#: field of view found). Per statistic: (lowest, median, highest photograph).
REAL_PHOTOGRAPHS: dict[str, tuple[float, float, float]] = {
    "disc_diameter": (0.0889, 0.1172, 0.1572),
    "disc_brightness": (1.344, 1.794, 3.039),
    "rim_width": (19.87, 29.28, 37.61),
    "vessel_fraction": (0.1056, 0.1737, 0.2775),
    "vessel_contrast": (0.1289, 0.1623, 0.2248),
    "calibre_0.5-1": (11.39, 15.0, 19.38),
    "calibre_1-2": (10.2, 14.58, 18.99),
    "calibre_2-3": (9.0, 13.39, 17.39),
}


def _normalise(image: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The field of view cut square and resized to ``NORMALISED_WIDTH``: RGB float32 and the field's mask."""
    fov = find_fov(image, source=name, check_fundus=False)
    if not fov.found:
        raise ValueError(f"{name}: no circular field of view found, cannot normalise the photograph")
    rgb = crop_to_fov(image, fov, margin=0.0)
    mask = crop_to_fov(fov.mask.astype(np.uint8), fov, margin=0.0)
    n = NORMALISED_WIDTH
    interp = cv2.INTER_AREA if rgb.shape[0] > n else cv2.INTER_LINEAR
    rgb = cv2.resize(rgb, (n, n), interpolation=interp).astype(np.float32)
    mask = cv2.resize(mask, (n, n), interpolation=cv2.INTER_NEAREST).astype(bool)
    return rgb, mask


def _find_disc(rgb: np.ndarray, inside: np.ndarray) -> tuple[float, float]:
    """Centre of the brightest large blob: green + red, blurred at a third of a disc, over a wide surround.

    Searched on a copy a quarter the size (the blurs are wide; a pixel there is well under a tenth of a disc).
    """
    q = 4
    n = rgb.shape[0] // q
    small = cv2.resize(rgb, (n, n), interpolation=cv2.INTER_AREA)
    lum = small[..., 1] + 0.5 * small[..., 0]
    field = cv2.resize(inside.astype(np.uint8), (n, n), interpolation=cv2.INTER_NEAREST)
    w = field.astype(np.float32)

    # Normalised convolution, so the dark border does not pull the field's edge down.
    def blur(a: np.ndarray, s: float) -> np.ndarray:
        return cv2.GaussianBlur(a * w, (0, 0), s) / np.maximum(cv2.GaussianBlur(w, (0, 0), s), 1e-3)

    blob = blur(lum, _DISC_R / 3.0 / q)
    surround = blur(lum, _DISC_R * 3.0 / q)
    score = (blob - surround) / np.maximum(surround, 1.0)
    core = cv2.erode(field, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11))).astype(bool)
    score[~core] = -np.inf
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    return float((x + 0.5) * q - 0.5), float((y + 0.5) * q - 0.5)


def _ray_profiles(img: np.ndarray, cx: float, cy: float, n_rays: int, r_max: float) -> np.ndarray:
    """``img`` sampled along ``n_rays`` rays from ``(cx, cy)``, one pixel apart: ``(n_rays, r_max)``."""
    r = np.arange(int(r_max), dtype=np.float32)
    a = np.linspace(0.0, 2.0 * np.pi, n_rays, endpoint=False, dtype=np.float32)
    mx = (cx + np.cos(a)[:, None] * r[None]).astype(np.float32)
    my = (cy + np.sin(a)[:, None] * r[None]).astype(np.float32)
    return cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _measure_disc(green_closed: np.ndarray, inside: np.ndarray, cx: float, cy: float) -> tuple[float, float, float]:
    """``(radius px, brightness ratio, rim width px)`` of the disc centred at ``(cx, cy)``.

    On each ray the edge is where the profile first falls below a third of the way from the background (median
    2-3 typical disc radii out) up to the disc's brightest level: the outer edge of the rim, not the cup's.
    """
    smooth = cv2.GaussianBlur(green_closed, (0, 0), 2.0)
    prof = _ray_profiles(smooth, cx, cy, 48, 3.0 * _DISC_R)
    grad = np.gradient(prof, axis=1)
    top = np.percentile(prof[:, : int(0.4 * _DISC_R)], 90, axis=1)
    base = np.median(prof[:, int(2.0 * _DISC_R) :], axis=1)
    lo, hi = int(0.2 * _DISC_R), int(2.0 * _DISC_R)
    below = prof[:, lo:hi] < (base + (top - base) / 3.0)[:, None]
    edge = np.where(below.any(axis=1), lo + np.argmax(below, axis=1), hi)
    radius = float(np.median(edge))
    # Rim sharpness: the steepest fall within a quarter radius of each ray's edge, against the rim's height.
    k = max(3, int(0.25 * radius))
    slope = np.array([-grad[i, max(0, e - k) : e + k].min() for i, e in enumerate(edge)])
    height = top - base
    rim_width = float(np.median(height) / max(float(np.median(slope)), 1e-3))
    yy, xx = np.mgrid[: inside.shape[0], : inside.shape[1]]
    d = np.hypot(xx - cx, yy - cy)
    disc = (d < 0.6 * radius) & inside
    ring = (d > 1.5 * radius) & (d < 2.5 * radius) & inside
    if not disc.any() or not ring.any():
        return radius, float("nan"), rim_width
    return radius, float(green_closed[disc].mean() / max(np.median(green_closed[ring]), 1.0)), rim_width


def _skeleton(mask: np.ndarray) -> np.ndarray:
    from skimage.morphology import skeletonize

    return skeletonize(mask)


def measure_image(image: np.ndarray, name: str = "image") -> PhotoAnatomy:
    """Measure the disc and vessels of one RGB uint8 photograph.

    Raises:
        ValueError: No field of view can be found in the photograph.
    """
    rgb, inside = _normalise(image, name)
    n = NORMALISED_WIDTH
    green = cv2.GaussianBlur(rgb[..., 1], (0, 0), 1.5)
    close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_VESSEL_CLOSE, _VESSEL_CLOSE))
    # Outside the field the closing would spread the black border inwards: fill it with the field's median.
    filled = np.where(inside, green, float(np.median(green[inside])))
    closed = cv2.morphologyEx(filled, cv2.MORPH_CLOSE, close)
    cx, cy = _find_disc(rgb, inside)
    radius, brightness, rim_width = _measure_disc(closed, inside, cx, cy)
    background = cv2.GaussianBlur(closed, (0, 0), 4.0)
    depth = (background - filled) / np.maximum(background, 1.0)
    core = cv2.erode(inside.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (61, 61))).astype(bool)
    yy, xx = np.mgrid[:n, :n]
    dist = np.hypot(xx - cx, yy - cy) / (2.0 * radius)  # disc diameters from the disc centre
    vessel = (depth > VESSEL_DEPTH) & core
    count, labels, stats, _ = cv2.connectedComponentsWithStats(vessel.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= _MIN_PIECE
    vessel = keep[labels]
    region = core & (dist > 0.5)
    fraction = float(vessel[region].mean()) if region.any() else float("nan")
    skel = _skeleton(vessel)
    width = 2.0 * cv2.distanceTransform(vessel.astype(np.uint8), cv2.DIST_L2, 5) - 1.0
    calibre: list[float | None] = []
    for a, b in BANDS:
        w = width[skel & (dist >= a) & (dist < b)]
        calibre.append(round(float(np.percentile(w, 90)), 2) if w.size >= 20 else None)
    lines = skel & (dist >= 1.0) & (dist < 3.0)
    contrast = float(np.median(depth[lines])) if lines.any() else float("nan")
    return PhotoAnatomy(
        name=name,
        disc_xy=(round(cx, 1), round(cy, 1)),
        disc_diameter=round(2.0 * radius / n, 4),
        disc_brightness=round(brightness, 3),
        rim_width=round(rim_width, 2),
        vessel_fraction=round(fraction, 4),
        vessel_contrast=round(contrast, 4),
        calibre=tuple(calibre),
    )


def measure_folder(
    path: str | Path, layout: str = "auto", split: str | None = None, limit: int | None = None, progress: bool = False
) -> tuple[list[PhotoAnatomy], list[str]]:
    """Measure the photographs of any folder ``readers.open_dataset`` opens (a synthetic cohort, IDRiD, a plain
    folder of photographs, ...). Returns the measurements and the messages of photographs left out (no field of
    view found).

    Raises:
        ValueError: The folder holds no dataset we read, or no photograph in it could be measured.
    """
    from tqdm.auto import tqdm

    from drgnet.data.readers import open_dataset

    ds = open_dataset(path, layout=layout, split=split)
    n = len(ds) if limit is None else min(len(ds), int(limit))
    photos, skipped = [], []
    for i in tqdm(range(n), disable=not progress, desc="measuring", unit="photo"):
        sample = ds[i]
        try:
            photos.append(measure_image(sample.image, sample.name))
        except ValueError as exc:
            skipped.append(str(exc))
    if not photos:
        raise ValueError(f"{path}: no photograph could be measured ({len(skipped)} without a field of view)")
    return photos, skipped


def measure_real_photographs(progress: bool = False) -> tuple[list[PhotoAnatomy], list[str]]:
    """Measure every real photograph this machine has (``real_samples.photographs``: the realism benchmark's set).

    Raises:
        ValueError: None was found (see ``real_samples`` for where they are looked for).
    """
    from tqdm.auto import tqdm

    from drgnet.data import real_samples
    from drgnet.data.preprocess import load_rgb

    found = real_samples.photographs()
    if not found:
        raise ValueError(
            "no real photographs found: set DRGNET_SHARED_DIR (../shared/data/idrid-train4) and/or "
            "DRGNET_SAMPLES_DIR (scripts/fetch_real_samples.sh)"
        )
    photos, skipped = [], []
    for name, path in tqdm(found, disable=not progress, desc="measuring", unit="photo"):
        try:
            photos.append(measure_image(load_rgb(path), name))
        except ValueError as exc:
            skipped.append(str(exc))
    return photos, skipped


#: Statistics a summary carries, in table order.
STATISTICS = (
    "disc_diameter",
    "disc_brightness",
    "rim_width",
    "vessel_fraction",
    "vessel_contrast",
    *(f"calibre_{a:g}-{b:g}" for a, b in BANDS),
)


def _values(p: PhotoAnatomy) -> dict[str, float | None]:
    out: dict[str, float | None] = {k: getattr(p, k) for k in STATISTICS[:5]}
    out.update({f"calibre_{a:g}-{b:g}": c for (a, b), c in zip(BANDS, p.calibre, strict=True)})
    return out


def summarise(photos: Iterable[PhotoAnatomy]) -> AnatomySummary:
    """Minimum, median and maximum of every statistic over photographs (missing values left out)."""
    photos = list(photos)
    values = {}
    for key in STATISTICS:
        v = np.asarray([x for p in photos if (x := _values(p)[key]) is not None and math.isfinite(x)], float)
        if len(v):
            values[key] = (round(float(v.min()), 4), round(float(np.median(v)), 4), round(float(v.max()), 4))
    return AnatomySummary(len(photos), values)


def format_table(photos: list[PhotoAnatomy], title: str = "") -> str:
    """A Markdown table: one row per photograph, then the median."""
    head = "| photograph | " + " | ".join(STATISTICS) + " |"
    lines = [f"{title}\n" if title else "", head, "|---|" + "---:|" * len(STATISTICS)]
    for p in photos:
        v = _values(p)
        lines.append(f"| {p.name} | " + " | ".join("-" if v[k] is None else f"{v[k]:.3g}" for k in STATISTICS) + " |")
    s = summarise(photos)
    lines.append(
        "| **median** | " + " | ".join(f"{s.median(k):.3g}" if k in s.values else "-" for k in STATISTICS) + " |"
    )
    return "\n".join(lines).lstrip("\n")
