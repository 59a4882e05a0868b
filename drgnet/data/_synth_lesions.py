"""Lesions of the synthetic retina: the shape of each kind of lesion and how lesions and laser scars are
rasterised.

Shapes are in normalised field coordinates (see ``_synth_anatomy``); where they go is decided in
``_synth_pathology``. The four masked lesion types (MA, HE, EX, SE) are composited with a per-pixel alpha; their
masks are that alpha >= 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from drgnet.data._synth_anatomy import Eye, Raster
from drgnet.labels import LESIONS

#: Pixels per field radius at the 512 px reference size; lesion sizes below are quoted in those pixels.
_REF = 0.46 * 512


def _px(v: float) -> float:
    return v / _REF


@dataclass
class Lesion:
    """One drawn lesion: its outline relative to its centre, in field radii."""

    kind: str  # one of LESIONS
    shape: str  # "ma", "dot", "blot", "flame", "preretinal", "exudate", "cotton_wool"
    centre: tuple[float, float]
    radius: float  # bounding radius (what placement keeps clear of other lesions)
    polygons: list[np.ndarray] = field(default_factory=list)  # (N, 2) offsets from the centre
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)  # dark lesions: factor on the background
    opacity: float = 1.0
    softness: float = 0.0  # blur of the outline, field radii
    seed: int = 0  # texture of fluffy edges


def _blob(rng: np.random.Generator, radius: float, rough: float, n: int = 28) -> np.ndarray:
    """A closed irregular outline: a circle whose radius wobbles with a few low harmonics."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    rr = np.ones(n)
    for k in range(2, 6):
        rr += rough * rng.normal(0.0, 1.0) / k * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    rr = np.clip(rr, 0.45, 1.6) * radius
    return np.stack([rr * np.cos(t), rr * np.sin(t)], axis=1)


def _rotate(poly: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return poly @ np.array([[c, s], [-s, c]])


def _lognormal(rng: np.random.Generator, median: float, sigma: float, lo: float, hi: float) -> float:
    """A size drawn from a log-normal distribution (sizes of real lesions are skewed), clipped to [lo, hi]."""
    return float(np.clip(median * math.exp(rng.normal(0.0, sigma)), lo, hi))


# Sizes below are radii in field radii, which equal diameters in per mille of the FOV diameter / 1000: real
# microaneurysms measure 3.4 / 5.2 / 7.7 per mille (p10 / median / p90) on IDRiD (drgnet synth-stats).


def _make_ma(rng: np.random.Generator, x: float, y: float) -> Lesion:
    r = _lognormal(rng, 0.0050, 0.28, 0.0026, 0.011)
    # Real microaneurysms are faint, about -7 on a 0-255 green channel: a few percent of the background,
    # absorbed mostly in green and blue.
    d = rng.uniform(0.7, 1.3)
    colour = (1.0 - 0.05 * d, 1.0 - 0.22 * d, 1.0 - 0.17 * d)
    return Lesion("MA", "ma", (x, y), r, colour=colour, softness=0.4 * r)


def _blotch(rng: np.random.Generator, radius: float, rough: float, n: int = 40) -> np.ndarray:
    """An irregular, blotchy outline: low harmonics for the overall shape plus a little high-frequency
    ruffling, as blood spreading between retinal cells does not make a smooth circle."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    rr = np.ones(n)
    for k in range(2, 10):
        amp = rough * (1.0 / k if k < 6 else 0.35 / k)
        rr += amp * rng.normal(0.0, 1.0) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    rr = np.clip(rr, 0.5, 1.6) * radius
    return np.stack([rr * np.cos(t), rr * np.sin(t)], axis=1)


def _union_area(polys: list[np.ndarray], grid: int = 64) -> float:
    """Area covered by overlapping polygons (field units), rasterised on a grid over their bounding box."""
    pts = np.concatenate(polys)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    scale = (grid - 1) / max(float((hi - lo).max()), 1e-12)
    canvas = np.zeros((grid, grid), np.uint8)
    for p in polys:
        cv2.fillPoly(canvas, [np.round((p - lo) * scale * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return float(canvas.sum()) / scale**2


def _haemorrhage_outline(rng: np.random.Generator, r: float, parts: int, rough: float) -> list[np.ndarray]:
    """Outlines of an intraretinal haemorrhage of the area of a disc of radius ``r``: ``parts`` overlapping oval
    blots along a short random walk, so it comes out elongated, kinked or lobed as real ones do (on IDRiD their
    regions' major axis is a median 1.7 times the minor, and their outline fills 0.90 of its convex hull)."""
    polys = []
    pos = np.zeros(2)
    heading = rng.uniform(0.0, 2.0 * math.pi)
    for i in range(parts):
        ri = 1.0 if i == 0 else rng.uniform(0.55, 0.9)
        # Blood spreads between the retina's layers in ovals: stretch each blot along a direction near the walk's.
        stretch = math.sqrt(_lognormal(rng, 1.8, 0.25, 1.15, 3.2))
        blot = _blotch(rng, ri, rough, n=28)
        blot[:, 0] *= stretch
        blot[:, 1] /= stretch
        polys.append(_rotate(blot, heading + rng.normal(0.0, 0.5)) + pos)
        heading += rng.normal(0.0, 1.2)
        step = ri * stretch * rng.uniform(0.8, 1.2)
        pos = pos + step * np.array([math.cos(heading), math.sin(heading)])
    # Centre the union on the lesion's position and scale it to the drawn area (sizes stay calibrated).
    centre = np.concatenate(polys).mean(axis=0)
    k = r * math.sqrt(math.pi / _union_area(polys))
    return [(p - centre) * k for p in polys]


def _make_dot_blot(rng: np.random.Generator, x: float, y: float, big: bool) -> Lesion:
    # Sizes are skewed: many small dots, fewer large blots, a rare big one (real: 6 / 12 / 33 per mille).
    r = _lognormal(rng, 0.017, 0.4, 0.009, 0.04) if big else _lognormal(rng, 0.0082, 0.3, 0.0045, 0.015)
    # Dots are one or two ovals, blots a few merged patches.
    parts = int(rng.integers(2, 6)) if big else 1 + int(rng.random() < 0.6)
    polys = _haemorrhage_outline(rng, r, parts, 0.3 if big else 0.15)
    ext = max(float(np.hypot(p[:, 0], p[:, 1]).max()) for p in polys)
    # Colour as a transmission factor of a full-density layer of blood: red passes, green and blue are
    # absorbed. Real intraretinal haemorrhages are thin and faint (about -8 on the green channel).
    d = rng.uniform(0.7, 1.3)
    colour = (1.0 - 0.05 * d, 1.0 - 0.22 * d, 1.0 - 0.17 * d)
    # Edges soft enough to look like blood in tissue, sharp enough to keep the lobes (a wide blur rounds them off).
    soft = r * (rng.uniform(0.12, 0.18) if big else rng.uniform(0.15, 0.22))
    return Lesion(
        "HE",
        "blot" if big else "dot",
        (x, y),
        ext,
        polys,
        colour,
        softness=soft,
        seed=int(rng.integers(1 << 31)),
    )


def _make_flame(rng: np.random.Generator, eye: Eye, x: float, y: float) -> Lesion:
    """A flame (splinter) haemorrhage: blood in the nerve-fibre layer, so a bundle of fine parallel streaks
    along the fibres, splintered and feathered at the ends."""
    length = rng.uniform(0.03, 0.07)
    width = rng.uniform(0.008, 0.016)
    ang = eye.nerve_fibre_angle(x, y) + rng.normal(0.0, 0.08)
    bend = rng.normal(0.0, 0.05)  # fibres curve a little
    polys = []
    t = np.linspace(-1.0, 1.0, 28)
    n = int(rng.integers(4, 9))
    lanes = np.sort(rng.uniform(-0.5, 0.5, n)) * width
    # A thin sheet of blood joins the streaks in the middle, so the flame is one haemorrhage.
    body_hw = (float(np.abs(lanes).max()) + width * 0.1) * (1.0 - t**2) ** 0.8 + _px(0.3)
    body_z = t * length * 0.3
    body_c = bend * body_z**2 / max(length, 1e-6) * 4.0
    body = np.concatenate(
        [np.stack([body_z, body_c + body_hw], 1), np.stack([body_z[::-1], body_c[::-1] - body_hw[::-1]], 1)]
    )
    polys.append(_rotate(body, ang))
    for k in range(n):
        # Streaks nearer the axis of the flame are longer; ends are staggered.
        lz = length * rng.uniform(0.45, 1.0) * (1.0 - 0.6 * abs(lanes[k]) / width) / 2.0
        hw = width * rng.uniform(0.07, 0.16) * (1.0 - t**2) ** 0.6 + _px(0.35)
        shift_a = rng.normal(0.0, length * 0.1)
        along = t * lz + shift_a
        centre_l = lanes[k] + bend * along**2 / max(length, 1e-6) * 4.0
        top = np.stack([along, centre_l + hw], axis=1)
        bot = np.stack([along[::-1], centre_l[::-1] - hw[::-1]], axis=1)
        polys.append(_rotate(np.concatenate([top, bot]), ang))
    ext = max(float(np.hypot(p[:, 0], p[:, 1]).max()) for p in polys)
    d = rng.uniform(0.7, 1.3)
    colour = (1.0 - 0.08 * d, 1.0 - 0.4 * d, 1.0 - 0.3 * d)
    return Lesion("HE", "flame", (x, y), ext, polys, colour, softness=0.1 * width, seed=int(rng.integers(1 << 31)))


def _make_preretinal(rng: np.random.Generator, x: float, y: float) -> Lesion:
    rx = _px(rng.uniform(18.0, 38.0))
    ry = rx * rng.uniform(0.75, 1.0)
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    pts = np.stack([rx * np.cos(t), ry * np.sin(t)], axis=1)
    # Red cells settle: a flat, horizontal fluid level on top, the classic boat shape.
    level = -ry * rng.uniform(0.0, 0.45)
    pts[:, 1] = np.maximum(pts[:, 1], level)
    pts += rng.normal(0.0, rx * 0.015, pts.shape)
    ext = float(np.hypot(pts[:, 0], pts[:, 1]).max())
    return Lesion("HE", "preretinal", (x, y), ext, [pts], (0.9, 0.5, 0.55), softness=_px(0.4))


def _make_exudate(rng: np.random.Generator, x: float, y: float, big: bool) -> Lesion:
    # Real hard exudates are mostly small specks (3 / 6 / 14 per mille) with the odd plaque.
    r = _lognormal(rng, 0.0095, 0.35, 0.005, 0.025) if big else _lognormal(rng, 0.004, 0.35, 0.002, 0.01)
    polys = [_blob(rng, r, 0.45, n=18)]
    if big and rng.random() < 0.5:
        # Larger plaques form where neighbouring flecks coalesce.
        for _ in range(int(rng.integers(1, 4))):
            a = rng.uniform(0, 2 * math.pi)
            o = r * rng.uniform(0.6, 1.1)
            polys.append(_blob(rng, r * rng.uniform(0.35, 0.7), 0.45, n=14) + [o * math.cos(a), o * math.sin(a)])
    ext = max(float(np.hypot(p[:, 0], p[:, 1]).max()) for p in polys)
    # Waxy yellow lipid with sharp edges: a gain on the background (about +19 on the green channel on real
    # photographs), strongest in green, as the red channel is already bright.
    v = rng.uniform(0.6, 1.4)
    yel = rng.uniform(0.0, 1.0)
    colour = (1.0 + 0.11 * v, 1.0 + 0.5 * v, 1.0 + (0.52 - 0.35 * yel) * v)
    return Lesion("EX", "exudate", (x, y), ext, polys, colour, softness=0.15 * r, seed=int(rng.integers(1 << 31)))


def _make_cotton_wool(rng: np.random.Generator, eye: Eye, x: float, y: float) -> Lesion:
    # Small and feathery: 13 / 24 / 47 per mille on real photographs, elongated along the nerve fibres.
    length = 2.0 * _lognormal(rng, 0.026, 0.35, 0.012, 0.06)
    ang = eye.nerve_fibre_angle(x, y) + rng.normal(0.0, 0.3)
    poly = _blob(rng, length / 2.0, 0.3, n=32)
    poly[:, 1] *= rng.uniform(0.45, 0.75)
    polys = [_rotate(poly, ang)]
    # Often a few fluffy puffs run together along the fibres.
    for _ in range(int(rng.integers(0, 3))):
        lobe = _blob(rng, length * rng.uniform(0.2, 0.35), 0.35, n=24)
        o = np.array([rng.uniform(-0.45, 0.45) * length, rng.uniform(-0.15, 0.15) * length])
        polys.append(_rotate(lobe + o, ang))
    soft = length * rng.uniform(0.1, 0.16)
    ext = max(float(np.hypot(p[:, 0], p[:, 1]).max()) for p in polys) + 1.5 * soft
    # A whitish veil over the retina: a gain on the background (about +15 on the green channel).
    v = rng.uniform(0.7, 1.3)
    colour = (1.0 + 0.08 * v, 1.0 + 0.30 * v, 1.0 + 0.34 * v)
    opacity = rng.uniform(0.8, 1.0)
    return Lesion("SE", "cotton_wool", (x, y), ext, polys, colour, opacity, soft, int(rng.integers(1 << 31)))


def render_scars(alb: np.ndarray, scars: list[tuple[float, float, float, float]], raster: Raster) -> None:
    """Laser scars: a pale, atrophic ring around clumped dark pigment."""
    if not scars:
        return
    s = raster.size
    for x, y, r, pig in scars:
        cx, cy = raster.to_px(np.array([x, y]))
        rp = max(r * raster.radius, 1.0)
        x0, x1 = max(0, int(cx - rp - 2)), min(s, int(cx + rp + 3))
        y0, y1 = max(0, int(cy - rp - 2)), min(s, int(cy + rp + 3))
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
        d = np.hypot(xx - cx, yy - cy) / rp
        # Pigment clumps off-centre and unevenly; the atrophic halo is faint in some scars, bright in others.
        ang = pig * 97.0
        ox, oy = 0.35 * rp * math.cos(ang), 0.35 * rp * math.sin(ang)
        dp = np.hypot(xx - cx - ox, yy - cy - oy) / rp
        pale = np.clip(1.1 - d, 0.0, 1.0)[..., None] * np.clip(d * 1.5, 0.0, 1.0)[..., None]
        dark = np.clip(1.0 - dp * (1.6 + 1.5 * (1.0 - pig)), 0.0, 1.0)[..., None]
        patch = alb[y0:y1, x0:x1]
        pale *= 0.5 - 0.3 * pig
        dark *= 0.85 * pig
        patch[:] = patch * (1 - pale) + np.array([0.9, 0.72, 0.52], np.float32) * pale
        patch[:] = patch * (1 - dark) + np.array([0.2, 0.1, 0.06], np.float32) * dark


def _poly_coverage(polys: list[np.ndarray], h: int, w: int, q: int = 4) -> np.ndarray:
    """Exact-ish area coverage of polygons (pixel coordinates of the patch) by 4x4 supersampling."""
    canvas = np.zeros((h * q, w * q), np.uint8)
    shift = 2
    for p in polys:
        # One call per polygon: within one call OpenCV would cut holes where polygons overlap.
        pts = np.round((p * q - 0.5) * (1 << shift)).astype(np.int32)
        cv2.fillPoly(canvas, [pts], 255, cv2.LINE_8, shift)
    return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) * (1.0 / 255.0)


def _texture(seed: int, h: int, w: int, cells: int = 6) -> np.ndarray:
    """Smooth noise of unit spread over a lesion's patch: the same pattern at any pixel scale."""
    g = np.random.default_rng(seed).normal(0.0, 1.0, (cells, cells)).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)


def _lesion_alpha(
    les: Lesion, raster: Raster
) -> tuple[np.ndarray, tuple[int, int, int, int], np.ndarray | None] | None:
    """A lesion's alpha on its patch, the patch box and, for haemorrhages, how dense the blood is (0-1)."""
    s = raster.size
    cx, cy = raster.to_px(np.asarray(les.centre))
    ext = les.radius * raster.radius
    grow = 1.0
    if les.shape == "ma":
        ext = max(ext, 0.75)  # below this a microaneurysm would vanish at small image sizes
    elif les.shape in ("dot", "exudate") and ext < 1.0:
        # Likewise a fleck smaller than a pixel would tint the image without ever reaching its mask.
        grow = 1.0 / max(ext, 1e-6)
        ext = 1.0
    pad = 2 + int(math.ceil(3 * les.softness * raster.radius))
    x0, x1 = max(0, int(cx - ext) - pad), min(s, int(cx + ext) + pad + 1)
    y0, y1 = max(0, int(cy - ext) - pad), min(s, int(cy + ext) + pad + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    h, w = y1 - y0, x1 - x0
    if les.shape == "ma":
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
        d = np.hypot(xx - cx, yy - cy)
        # A soft round dot: alpha falls through 0.5 at the lesion's radius over its soft edge (at least the
        # anti-aliasing ramp of one pixel), so the mask is the disc whatever the pixel scale.
        ramp = max(1.0, 2.0 * les.softness * raster.radius)
        a = np.clip(0.5 + (ext - d) / ramp, 0.0, 1.0)
        return a, (y0, y1, x0, x1), None
    polys = [p * (raster.radius * grow) + [cx - x0, cy - y0] for p in les.polygons]
    dens = None
    if les.shape == "flame":
        # Striated: each streak adds blood, so overlapping streaks are darker and the gaps lighter.
        covs = [_poly_coverage([p], h, w) for p in polys]
        a = np.maximum.reduce(covs)
        dens = np.clip(0.35 * covs[0] + 0.5 * sum(covs[1:]), 0.0, 1.0)
    else:
        a = _poly_coverage(polys, h, w)
    if les.shape == "cotton_wool":
        sig = max(les.softness * raster.radius, 0.6)
        a = cv2.GaussianBlur(a, (0, 0), sig)
        # Fluffy, feathery texture: the same pattern at any pixel scale, as it comes from a small grid.
        g = np.random.default_rng(les.seed).normal(0.0, 1.0, (7, 7)).astype(np.float32)
        tex = cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)
        # Finer, feathery fibres at the edge: a denser noise that only matters where the spot thins out.
        fine = _texture(les.seed + 1, h, w, 15)
        t = np.clip((a - 0.15) / 0.67, 0.0, 1.0)
        a = les.opacity * t * t * (3 - 2 * t) * (1.0 + 0.15 * tex + 0.12 * fine + 0.3 * fine * (1.0 - t))
        a = np.clip(a, 0.0, 1.0)
    elif les.shape in ("dot", "blot", "flame"):
        sig = max(les.softness * raster.radius, 0.4)
        soft = cv2.GaussianBlur(a, (0, 0), sig)
        tex = _texture(les.seed, h, w, 5 if les.shape == "dot" else 7)
        # Feathered, blotchy rim: noise moves the edge in and out where the blurred outline is partial.
        a = np.clip(1.12 * soft + 0.3 * tex * soft * (1.0 - soft), 0.0, 1.0)
        core = cv2.GaussianBlur(soft, (0, 0), max(1.0, 0.18 * max(h, w)))
        core = core / max(float(core.max()), 1e-6)
        blood = 0.55 + 0.45 * core + 0.12 * tex
        if dens is not None:
            blood = 0.45 * blood + 0.55 * cv2.GaussianBlur(dens, (0, 0), max(0.4, 0.5 * sig)) + 0.25
        dens = np.clip(blood, 0.3, 1.15) * np.clip(a * 1.6, 0.0, 1.0)
    elif les.softness > 0:
        a = np.clip(cv2.GaussianBlur(a, (0, 0), max(les.softness * raster.radius, 0.4)) * 1.15, 0.0, 1.0)
    # A lesion too small or too soft for this pixel grid would tint the photograph without reaching its mask
    # (alpha >= 0.5): lift it so that its densest pixel does.
    peak = float(a.max())
    if 0.0 < peak < 0.5:
        a *= 0.501 / peak
    # Blur tails far below one 8-bit level would only smear invisible changes outside the lesion.
    a[a < 1.0 / 512.0] = 0.0
    return a, (y0, y1, x0, x1), dens


def render_lesions(alb: np.ndarray, background: np.ndarray, lesions: list[Lesion], raster: Raster) -> np.ndarray:
    """Composite the lesions onto the albedo in place; returns their alphas, (4, S, S) float32."""
    alphas = np.zeros((len(LESIONS), raster.size, raster.size), np.float32)
    for les in lesions:
        got = _lesion_alpha(les, raster)
        if got is None:
            continue
        a, (y0, y1, x0, x1), dens = got
        bg = background[y0:y1, x0:x1]
        col = np.asarray(les.colour, np.float32)
        if les.kind in ("MA", "HE"):
            # Blood hides what lies beneath, so its colour comes from the vessel-free background.
            # Beer-Lambert: thicker blood absorbs more, so the colour deepens with the density.
            colour = bg * (col if dens is None else np.power(col, dens[..., None]))
            if les.shape == "preretinal":
                core = cv2.GaussianBlur(a, (0, 0), max(1.0, a.shape[0] / 6.0))
                colour = colour * (1.0 - 0.22 * (core / max(float(core.max()), 1e-6)))[..., None]
                yy = np.linspace(0.0, 1.0, a.shape[0], dtype=np.float32)[:, None, None]
                colour = colour * (1.05 - 0.3 * yy)
        else:
            # Exudates and cotton-wool spots brighten what lies beneath: a gain on the vessel-free background.
            colour = bg * col
            if les.kind == "EX":
                # Waxy specks are brightest in their middle.
                core = cv2.GaussianBlur(a, (0, 0), max(0.5, 0.3 * les.radius * raster.radius))
                colour = colour * (0.93 + 0.1 * core)[..., None]
        patch = alb[y0:y1, x0:x1]
        a3 = a[..., None]
        patch *= 1.0 - a3
        patch += colour * a3
        k = LESIONS.index(les.kind)
        np.maximum(alphas[k, y0:y1, x0:x1], a, out=alphas[k, y0:y1, x0:x1])
    return alphas
