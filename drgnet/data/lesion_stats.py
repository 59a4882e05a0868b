"""Per-lesion statistics of a labelled folder: how faint, how large and how many lesions are.

The same measurement runs on real photographs with lesion masks (IDRiD layout, e.g. ``../shared/data/idrid-train4``)
and on synthetic cohorts, so the generator can be calibrated against real photographs and a test can hold it there.
For every connected region (8-connected) of a lesion mask inside the field of view:

- **diameter**: the diameter of a disc of the region's area, as a per-mille share of the field-of-view diameter
  (found by ``preprocess.find_fov``), so photographs of any resolution compare.
- **solidity**: the area inside the region's outline over the area of its convex hull: near 1 (0.97-0.99) for a
  round or oval spot at any pixel scale, lower for a lobed, notched or branching one.
- **elongation**: the ratio of the major to the minor axis of the ellipse with the region's second moments (1 for a
  disc). Both only for regions of at least ``SHAPE_MIN_AREA_PX`` pixels: a shape of a handful of pixels is the
  pixel grid's, not the lesion's.

For every photograph and lesion, the **contrast**: mean green value (0-255) over all its lesion pixels minus the
mean over a band ``RING_WIDTH`` of the FOV diameter wide around them, leaving out pixels of any lesion and outside
the field of view (pixel-weighted, so large lesions count by their area, as the eye sees them).

Summaries pool regions over photographs (p10 / median / p90 diameter, median solidity and elongation), take the
median contrast over photographs, and count regions per photograph (median over the photographs annotated for that
lesion and showing at least one).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from drgnet.data.preprocess import find_fov
from drgnet.data.sample import Sample
from drgnet.labels import LESIONS

__all__ = [
    "REAL_IDRID_TRAIN4",
    "LesionSummary",
    "PhotoLesions",
    "format_table",
    "measure_folder",
    "measure_sample",
    "region_shape",
    "summarise",
]

#: Width of the band around a photograph's lesions that serves as their background, share of the FOV diameter
#: (about 15 px on a 4288 x 2848 IDRiD photograph, 2-3 px at 512 px).
RING_WIDTH = 0.0045
#: Minimum band width, pixels.
RING_MIN_WIDTH_PX = 2

#: Smallest region whose shape is measured, pixels (a disc about 6 px across).
SHAPE_MIN_AREA_PX = 30

#: Real reference values: ``drgnet synth-stats ../shared/data/idrid-train4`` (this module's measurement on IDRiD_01-04,
#: 4288 x 2848, CC BY 4.0), 2026-12-01. Per lesion: regions per photograph (median), region diameter in per mille of
#: the FOV diameter (p10, median, p90) and green contrast (0-255, median over photographs). That folder's README
#: quotes slightly different counts and sizes from another measurement (MA 22 regions, 5.2 per mille; HE 14, 11.7;
#: EX 116, 5.7; SE 13 / 24 / 47) and the same contrasts (about -7, -8, +19, +15). SE is annotated on one photograph,
#: as one region: its count is no reference.
REAL_IDRID_TRAIN4: dict[str, dict[str, float | None]] = {
    "MA": {"regions_per_photo": 30, "p10": 3.0, "median": 4.7, "p90": 6.9, "contrast": -6.2},
    "HE": {"regions_per_photo": 18, "p10": 5.6, "median": 9.2, "p90": 21.5, "contrast": -8.8},
    "EX": {"regions_per_photo": 136, "p10": 2.8, "median": 5.4, "p90": 13.2, "contrast": 17.4},
    "SE": {"regions_per_photo": None, "p10": 19.0, "median": 19.0, "p90": 19.0, "contrast": 16.4},
}
#: Shapes on the same photographs at full resolution (``drgnet synth-stats ../shared/data/idrid-train4``,
#: 2026-12-07): median solidity and elongation of the regions of ``SHAPE_MIN_AREA_PX`` or more (MA 124 of 125 regions,
#: HE 124 of 124, EX 661 of 664, SE 1). Shrunk to the field of view of a 1024 px synthetic photograph (943 px) the
#: same regions measure a little less solid and as elongated: HE 0.86 / 1.66, EX 0.83 / 1.59 (docs/benchmarks.md).
REAL_IDRID_TRAIN4["MA"].update(solidity=0.97, elongation=1.12)
REAL_IDRID_TRAIN4["HE"].update(solidity=0.90, elongation=1.68)
REAL_IDRID_TRAIN4["EX"].update(solidity=0.95, elongation=1.45)
REAL_IDRID_TRAIN4["SE"].update(solidity=0.94, elongation=1.40)


@dataclass
class PhotoLesions:
    """The regions of one photograph, per lesion: diameters (per mille of FOV), shapes of the regions large enough
    to have one (solidity, elongation) and contrasts (0-255 green)."""

    name: str
    fov_diameter_px: float
    known: dict[str, bool]
    diameters: dict[str, list[float]] = field(default_factory=dict)
    shapes: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # (solidity, elongation) per region
    contrasts: dict[str, float] = field(default_factory=dict)  # pooled over the photo's regions


@dataclass(frozen=True)
class LesionSummary:
    """One lesion's statistics over a folder."""

    lesion: str
    photos: int  # annotated for this lesion
    photos_with: int  # of those, showing at least one region
    regions: int
    regions_per_photo: float | None  # median over photos_with; None when no photo shows the lesion
    p10: float | None
    median: float | None
    p90: float | None
    contrast: float | None  # median over photographs of the pooled contrast
    contrast_range: tuple[float, float] | None  # lowest and highest photograph
    shaped: int = 0  # regions of at least SHAPE_MIN_AREA_PX pixels, whose shape is measured
    solidity: float | None = None  # median over those regions
    elongation: float | None = None  # median over those regions

    def to_json(self) -> dict:
        return asdict(self)


def _band_contrast(green: np.ndarray, lesion: np.ndarray, blocked: np.ndarray, width_px: float) -> float | None:
    """Mean over ``lesion`` minus the mean over a band of ``width_px`` around it (``blocked`` pixels left out)."""
    r = max(RING_MIN_WIDTH_PX, int(round(width_px)))
    ys, xs = np.nonzero(lesion)
    H, W = lesion.shape
    y0, y1 = max(0, ys.min() - r - 1), min(H, ys.max() + r + 2)
    x0, x1 = max(0, xs.min() - r - 1), min(W, xs.max() + r + 2)
    crop = lesion[y0:y1, x0:x1].astype(np.uint8)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    band = cv2.dilate(crop, disc).astype(bool) & ~blocked[y0:y1, x0:x1]
    if not band.any():
        return None
    g = green[y0:y1, x0:x1]
    return float(g[crop.astype(bool)].mean() - g[band].mean())


def region_shape(region: np.ndarray) -> tuple[float, float]:
    """Solidity and elongation of one region (a boolean mask holding one connected region)."""
    ys, xs = np.nonzero(region)
    # Outline through the boundary pixels' centres against its hull: the pixel staircase of a small round region
    # costs it little (a digital disc of 3 px radius scores 0.97, of 40 px 0.99), where counting its pixels
    # against the hull of their corners would score the same disc 0.89 and 0.98.
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = max(contours, key=len)
    hull_area = float(cv2.contourArea(cv2.convexHull(outline)))
    solidity = float(cv2.contourArea(outline)) / hull_area if hull_area >= 1.0 else 1.0
    # Second moments of the pixel squares (each adds 1/12 of a unit square's own spread).
    cov = np.cov(np.stack([xs, ys]).astype(np.float64), bias=True) + np.eye(2) / 12.0
    lo, hi = np.linalg.eigvalsh(cov)
    return solidity, math.sqrt(hi / max(lo, 1e-12))


def measure_sample(sample: Sample) -> PhotoLesions:
    """Measure every lesion region of one labelled photograph.

    Raises:
        ValueError: The sample has no lesion masks, or no field of view can be found in it.
    """
    if sample.masks is None:
        raise ValueError(f"{sample.name}: no lesion masks to measure")
    fov = find_fov(sample.image, source=sample.name, check_fundus=False)
    inside = fov.mask
    green = sample.image[..., 1].astype(np.float32)
    masks = sample.masks.astype(bool) & inside[None]
    # The ring leaves out every lesion (annotated or not: unannotated is treated as lesion-free) and the border.
    blocked = masks.any(axis=0) | ~inside
    fov_d = 2.0 * fov.radius
    out = PhotoLesions(sample.name, fov_d, dict(zip(LESIONS, sample.lesion_known, strict=True)))
    for k, lesion in enumerate(LESIONS):
        diam: list[float] = []
        shapes: list[tuple[float, float]] = []
        if sample.lesion_known[k] and masks[k].any():
            _, labels, stats, _ = cv2.connectedComponentsWithStats(masks[k].astype(np.uint8), connectivity=8)
            area = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
            diam = (1000.0 * np.sqrt(4.0 * area / math.pi) / fov_d).tolist()
            for i in np.flatnonzero(area >= SHAPE_MIN_AREA_PX) + 1:
                x, y, w, h = stats[i, :4]
                shapes.append(region_shape(labels[y : y + h, x : x + w] == i))
            contrast = _band_contrast(green, masks[k], blocked, RING_WIDTH * fov_d)
            if contrast is not None:
                out.contrasts[lesion] = contrast
        out.diameters[lesion] = diam
        out.shapes[lesion] = shapes
    return out


def measure_folder(
    path: str | Path, layout: str = "auto", split: str | None = None, limit: int | None = None, progress: bool = False
) -> list[PhotoLesions]:
    """Measure the labelled photographs of a folder that ``readers.open_dataset`` opens (IDRiD, FGADR, DDR
    segmentation, synthetic cohorts, ...).

    Raises:
        ValueError: The folder holds no dataset we read, or none of its photographs has lesion masks.
    """
    from drgnet.data.readers import open_dataset

    ds = open_dataset(path, layout=layout, split=split)
    n = len(ds) if limit is None else min(len(ds), int(limit))
    photos = []
    from tqdm.auto import tqdm

    for i in tqdm(range(n), disable=not progress, desc="measuring", unit="photo"):
        sample = ds[i]
        if sample.masks is not None and any(sample.lesion_known):
            photos.append(measure_sample(sample))
    if not photos:
        raise ValueError(f"{path}: no photograph with lesion masks to measure")
    return photos


def summarise(photos: Iterable[PhotoLesions]) -> dict[str, LesionSummary]:
    """Pool the regions of many photographs into one summary per lesion."""
    photos = list(photos)
    result = {}
    for lesion in LESIONS:
        known = [p for p in photos if p.known.get(lesion)]
        diam = np.asarray([d for p in known for d in p.diameters.get(lesion, [])], float)
        con = np.asarray([p.contrasts[lesion] for p in known if lesion in p.contrasts], float)
        shapes = np.asarray([sh for p in known for sh in p.shapes.get(lesion, [])], float).reshape(-1, 2)
        counts = [len(p.diameters.get(lesion, [])) for p in known]
        with_any = [c for c in counts if c]
        q = np.percentile(diam, [10, 50, 90]) if len(diam) else (None, None, None)
        result[lesion] = LesionSummary(
            lesion=lesion,
            photos=len(known),
            photos_with=len(with_any),
            regions=int(sum(counts)),
            regions_per_photo=float(np.median(with_any)) if with_any else None,
            p10=None if q[0] is None else round(float(q[0]), 2),
            median=None if q[1] is None else round(float(q[1]), 2),
            p90=None if q[2] is None else round(float(q[2]), 2),
            contrast=round(float(np.median(con)), 2) if len(con) else None,
            contrast_range=(round(float(con.min()), 2), round(float(con.max()), 2)) if len(con) else None,
            shaped=len(shapes),
            solidity=round(float(np.median(shapes[:, 0])), 3) if len(shapes) else None,
            elongation=round(float(np.median(shapes[:, 1])), 3) if len(shapes) else None,
        )
    return result


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def format_table(summary: dict[str, LesionSummary], title: str = "") -> str:
    """A Markdown table of ``summarise``'s result."""
    lines = [f"{title}\n" if title else ""]
    lines.append(
        "| lesion | photos with / annotated | regions | regions per photo (median) | "
        "diameter per mille of FOV (p10 / median / p90) | contrast, green 0-255 (median, range over photos) | "
        f"solidity (median) | elongation, major / minor axis (median) | regions >= {SHAPE_MIN_AREA_PX} px |"
    )
    lines.append("|---|---:|---:|---:|---|---|---:|---:|---:|")
    for s in summary.values():
        iqr = f" ({s.contrast_range[0]:+.1f} .. {s.contrast_range[1]:+.1f})" if s.contrast_range else ""
        lines.append(
            f"| {s.lesion} | {s.photos_with} / {s.photos} | {s.regions} | {_fmt(s.regions_per_photo, '.0f')} | "
            f"{_fmt(s.p10)} / {_fmt(s.median)} / {_fmt(s.p90)} | {_fmt(s.contrast, '+.1f')}{iqr} | "
            f"{_fmt(s.solidity, '.2f')} | {_fmt(s.elongation, '.2f')} | {s.shaped} |"
        )
    return "\n".join(lines).lstrip("\n")
