"""Anatomy of the synthetic retina: eye geometry, background, optic disc and macula.

The vessel tree grows and is drawn in ``_synth_vessels``.

Geometry lives in normalised coordinates: the field of view is the unit disc, x points right, y points down,
and the optic disc is always on the left (a left eye as photographed); right eyes are mirrored after
rendering. Because nothing here depends on pixels, the same eye rasterised at another scale (another camera's
field size or resolution) is the same eye.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class Vessel:
    """One unbranched vessel segment as a centreline with a calibre at each point."""

    points: np.ndarray  # (N, 2) normalised x, y
    widths: np.ndarray  # (N,) calibre (diameter) in field radii
    kind: str  # "artery" or "vein"
    generation: int  # 0 for the trunks leaving the disc


@dataclass
class Eye:
    """Everything about one eye that a camera does not change."""

    right: bool
    disc: np.ndarray  # centre, normalised
    disc_radius: float  # horizontal semi-axis
    # Layout unit, field radii: the disc diameter of an average eye at this magnification. The fovea lies about
    # 2.5 units from the disc, and the arcades, the macula and the lesions' zones are laid out in it; the visible
    # disc varies on its own (real discs differ in size far more than the disc-fovea distance does).
    unit: float
    disc_aspect: float  # vertical / horizontal semi-axis (discs are slightly tall ovals)
    disc_angle: float  # tilt of the disc oval, radians
    cup_ratio: float  # cup diameter / disc diameter
    fovea: np.ndarray
    albedo: np.ndarray  # (3,) base colour of the fundus at the posterior pole
    macula_strength: float
    foveal_reflex: float  # 0 = none (older eyes), up to 1
    tigroid: float  # how much choroidal vessel pattern shows through (thin pigment epithelium)
    atrophy: float  # peripapillary crescent, 0 = none; negative = pigmented rather than pale
    textures: tuple[np.ndarray, ...]  # small noise grids, resized to the field when rendered
    striation: float = 0.0  # how visible the nerve-fibre bundles are (young eyes show them clearly)
    vessels: list[Vessel] = field(default_factory=list)

    @property
    def disc_diameter(self) -> float:
        return 2.0 * self.disc_radius

    def nerve_fibre_angle(self, x: float, y: float) -> float:
        """Direction of the nerve-fibre layer at a point: radial from the disc nasally, arcing around the
        macula temporally (parabolas with their vertex at the disc), which is where flame haemorrhages point."""
        ax, ay = self.fovea - self.disc
        axis = math.atan2(ay, ax)
        c, s = math.cos(axis), math.sin(axis)
        dx, dy = x - self.disc[0], y - self.disc[1]
        u = dx * c + dy * s
        v = -dx * s + dy * c
        if u <= 0.0 or abs(v) < 1e-6:
            return math.atan2(dy, dx)
        tu, tv = 2.0 * u / abs(v), math.copysign(1.0, v)
        return math.atan2(tu * s + tv * c, tu * c - tv * s)


def plan_eye(rng: np.random.Generator) -> Eye:
    """Draw one eye: where the disc and fovea are, fundus pigmentation and texture.

    Its vessels are grown afterwards from the same generator (``_synth_vessels.grow_tree``).
    """
    right = bool(rng.random() < 0.5)
    unit = rng.uniform(0.29, 0.35)  # a 45-degree field spans about 6-7 of these
    # Measured on 12 real photographs (anatomy_stats, 2026-12-07) the disc spans 0.06-0.16 of the field's diameter,
    # median 0.115; drawn at the layout unit it measured 0.15, a third too large.
    disc_d = unit * rng.uniform(0.62, 0.85)
    # The disc sits about 2.5 units nasal to the fovea and a little above it. Photographs are centred somewhere
    # between the macula and the disc; the disc stays well inside the field.
    tilt = rng.normal(0.12, 0.05)
    dist = unit * rng.uniform(2.35, 2.7)
    disc = np.array([-rng.uniform(0.5, 0.74) + unit / 2 - 0.16, rng.uniform(-0.08, 0.04)])
    fovea = disc + dist * np.array([math.cos(tilt), math.sin(tilt)])
    pigment = rng.beta(2.2, 2.2)
    # Real fundus photographs are orange rather than pink: little blue comes back (IDRiD, HRF, DRIVE: blue a
    # tenth to a fifth of red, green a third to a half).
    light = np.array([0.95, 0.45, 0.17])
    dark = np.array([0.80, 0.30, 0.08])
    albedo = (1.0 - pigment) * light + pigment * dark
    albedo = albedo * np.exp(rng.normal(0.0, [0.03, 0.08, 0.25]))
    textures = (
        rng.normal(0.0, 1.0, (5, 5, 3)).astype(np.float32),
        rng.normal(0.0, 1.0, (14, 14, 3)).astype(np.float32),
        rng.normal(0.0, 1.0, (40, 40)).astype(np.float32),
        rng.normal(0.0, 1.0, (110, 110)).astype(np.float32),
        rng.normal(0.0, 1.0, (300, 300)).astype(np.float32),  # grain of the pigment epithelium
        rng.normal(0.0, 1.0, 720).astype(np.float32),  # nerve-fibre bundles around the disc
    )
    atrophy = 0.0
    if rng.random() < 0.45:
        atrophy = rng.uniform(0.3, 1.0) * (1.0 if rng.random() < 0.6 else -1.0)
    eye = Eye(
        right=right,
        disc=disc,
        disc_radius=disc_d / 2.0,
        unit=unit,
        disc_aspect=rng.uniform(1.03, 1.15),
        disc_angle=rng.normal(0.0, 0.12),
        cup_ratio=rng.uniform(0.25, 0.55),
        fovea=fovea,
        albedo=albedo,
        macula_strength=rng.uniform(0.55, 1.0),
        foveal_reflex=rng.uniform(0.3, 1.0) if rng.random() < 0.4 else 0.0,
        tigroid=rng.uniform(0.2, 1.0) * (1.0 if rng.random() < 0.35 else 0.25),
        atrophy=atrophy,
        textures=textures,
        striation=rng.uniform(0.4, 1.0),
    )
    return eye


@dataclass(frozen=True)
class Raster:
    """How normalised coordinates map onto one square canvas."""

    size: int  # canvas side, pixels
    radius: float  # field-of-view radius, pixels

    @property
    def centre(self) -> float:
        return self.size / 2.0

    def to_px(self, pts: np.ndarray) -> np.ndarray:
        return pts * self.radius + self.centre

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """Normalised x (1, S) and y (S, 1) of every pixel centre."""
        a = ((np.arange(self.size, dtype=np.float32) + 0.5) - self.centre) / self.radius
        return a[None, :], a[:, None]


def _field(grid: np.ndarray, raster: Raster) -> np.ndarray:
    """Resize a small noise grid so that it spans the field of view's bounding box, whatever the pixel scale."""
    box = max(2, int(math.ceil(2.0 * raster.radius)))
    big = cv2.resize(grid, (box, box), interpolation=cv2.INTER_CUBIC)
    out_shape = (raster.size, raster.size) + big.shape[2:]
    out = np.zeros(out_shape, dtype=np.float32)
    off = int(round(raster.centre - box / 2.0))
    s0, s1 = max(0, off), min(raster.size, off + box)
    out[s0:s1, s0:s1] = big[s0 - off : s1 - off, s0 - off : s1 - off]
    return out


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def render_background(eye: Eye, raster: Raster) -> np.ndarray:
    """Fundus albedo without vessels: pigmentation, choroidal mottling, macula, disc. (S, S, 3) float32.

    Everything but the finest grain is smooth at the pixel scale, so it is painted at half resolution and
    upsampled.
    """
    if raster.size >= 256:
        half = Raster(raster.size // 2, raster.radius * (raster.size // 2) / raster.size)
        small = _paint_background(eye, half)
        alb = cv2.resize(small, (raster.size, raster.size), interpolation=cv2.INTER_LINEAR)
    else:
        alb = _paint_background(eye, raster)
    # The grain of the pigment epithelium is the one texture at the pixel scale: painted at full resolution.
    grain = _field(eye.textures[4], raster)
    alb *= 1.0 + (0.04 * grain)[..., None] * np.array([0.6, 1.0, 1.0], np.float32)
    return alb


def _paint_background(eye: Eye, raster: Raster) -> np.ndarray:
    X, Y = raster.coords()
    r2 = X * X + Y * Y
    t0, t1, t2, t3, _, fibres = eye.textures
    low = _field(t0, raster)  # broad blotches of pigment
    mid = _field(t1, raster)
    cho = _field(t2, raster)  # choroidal vessel scale
    fine = _field(t3, raster)
    alb = np.broadcast_to(eye.albedo.astype(np.float32), low.shape).copy()
    alb *= 1.0 + 0.04 * low * np.array([0.8, 1.0, 1.0], np.float32)
    alb *= 1.0 + 0.02 * mid * np.array([0.7, 1.0, 1.0], np.float32)
    # Choroidal pattern: the ridges of band-limited noise look like the network of choroidal vessels with
    # darker pigment between them; it shows more towards the periphery.
    ridge = 1.0 - np.minimum(np.abs(cho) * 1.6, 1.0)
    periphery = 0.35 + 0.65 * np.clip(r2, 0.0, 1.0)
    cho_amp = (0.02 + 0.1 * eye.tigroid) * periphery
    alb *= 1.0 - (cho_amp * (1.0 - ridge))[..., None] * np.array([0.8, 1.0, 1.1], np.float32)
    # Real photographs carry about twice the fine texture of a smooth painting (high-pass spread of the green
    # channel at 384 px: 1.9-6.0 real, 1.9 before this grain was added).
    alb *= (1.0 + 0.03 * fine + 0.01 * cho)[..., None]
    _striation(eye, X, Y, alb, fibres)

    # Macula: darker and browner (luteal pigment absorbs blue), with a small darker foveal pit.
    fx, fy = eye.fovea
    dd = eye.unit
    d2 = (X - fx) ** 2 + (Y - fy) ** 2
    mac = np.exp(-d2 / (2.0 * (0.75 * dd) ** 2))
    pit = np.exp(-d2 / (2.0 * (0.22 * dd) ** 2))
    dark = (0.22 * mac + 0.2 * pit) * eye.macula_strength
    alb *= 1.0 - dark[..., None] * np.array([0.35, 1.3, 1.6], np.float32)
    if eye.foveal_reflex > 0:
        refl = np.exp(-d2 / (2.0 * (0.025 * dd) ** 2)) * eye.foveal_reflex
        ring = np.exp(-((np.sqrt(d2) - 0.55 * dd) ** 2) / (2.0 * (0.05 * dd) ** 2)) * eye.foveal_reflex
        alb += (0.12 * refl + 0.03 * ring)[..., None] * np.array([1.0, 0.9, 0.9], np.float32)

    _render_disc(eye, raster, X, Y, alb, fine)
    return alb


def _striation(eye: Eye, X: np.ndarray, Y: np.ndarray, alb: np.ndarray, fibres: np.ndarray) -> None:
    """Nerve-fibre bundles: fine bright streaks radiating from the disc, clearest above and below it (the thick
    arcuate bundles) and fading within a few disc diameters; they scatter light, so they whiten the fundus."""
    if eye.striation <= 0:
        return
    dx, dy = X - eye.disc[0], Y - eye.disc[1]
    r = np.sqrt(dx * dx + dy * dy) / eye.unit
    theta = np.arctan2(dy, dx)
    # A 1-D pattern over the angle around the disc: every bundle is a ray (as the fibres converge on the disc).
    pos = (theta + np.pi) / (2.0 * np.pi) * len(fibres)
    i0 = np.floor(pos).astype(np.int32) % len(fibres)
    t = (pos - np.floor(pos)).astype(np.float32)
    streak = fibres[i0] * (1.0 - t) + fibres[(i0 + 1) % len(fibres)] * t
    arcuate = 0.35 + 0.65 * np.abs(np.sin(theta))
    near = np.exp(-np.clip(r - 0.5, 0.0, None) / 1.2) * (r > 0.45)
    amp = (0.035 * eye.striation * arcuate * near * np.clip(streak, 0.0, None)).astype(np.float32)
    alb *= 1.0 + amp[..., None] * np.array([0.4, 1.0, 1.4], np.float32)


def _render_disc(eye: Eye, raster: Raster, X: np.ndarray, Y: np.ndarray, alb: np.ndarray, fine: np.ndarray):
    # Work in the disc's bounding box only.
    rd = eye.disc_radius
    box = rd * 1.8 * eye.disc_aspect
    c0 = raster.to_px(eye.disc - box)
    c1 = raster.to_px(eye.disc + box)
    x0, y0 = max(0, int(c0[0])), max(0, int(c0[1]))
    x1, y1 = min(raster.size, int(c1[0]) + 2), min(raster.size, int(c1[1]) + 2)
    if x1 <= x0 or y1 <= y0:
        return
    xs = X[:, x0:x1] - eye.disc[0]
    ys = Y[y0:y1, :] - eye.disc[1]
    ca, sa = math.cos(eye.disc_angle), math.sin(eye.disc_angle)
    u = xs * ca + ys * sa
    v = -xs * sa + ys * ca
    rho = np.sqrt((u / rd) ** 2 + (v / (rd * eye.disc_aspect)) ** 2)
    # The cup sits slightly temporal (towards the fovea, +x here) of the disc centre.
    cr = eye.cup_ratio
    rc = np.sqrt(((u - 0.15 * rd) / (rd * cr)) ** 2 + (v / (rd * cr * 1.1)) ** 2)
    patch = alb[y0:y1, x0:x1]
    noise = fine[y0:y1, x0:x1, None]
    # Real discs have a defined margin: a ramp about 28 px wide at a 1024 px field (anatomy_stats' rim width,
    # median of 12 photographs), where 0.82-1.08 here and the glow below measured 45.
    disc_a = (1.0 - _smoothstep(0.9, 1.03, rho))[..., None]
    cup_a = (1.0 - _smoothstep(0.55, 1.15, rc))[..., None]
    # Neuroretinal rim: pinkish orange, brightest towards the cup; cup: pale yellowish white.
    rim = np.array([1.08, 0.72, 0.3], np.float32) * (0.92 + 0.08 * (1.0 - np.clip(rho, 0, 1)))[..., None]
    rim = rim * (1.0 + 0.03 * noise)
    cup = np.array([1.16, 0.95, 0.5], np.float32)
    disc_col = rim * (1.0 - cup_a) + cup * cup_a
    # Peripapillary crescent on the temporal side: pale atrophy or a pigmented rim.
    if eye.atrophy != 0.0:
        ang = np.arctan2(v, u)
        side = np.clip(np.cos(ang), 0.0, 1.0) ** 1.5
        band = (_smoothstep(0.9, 1.0, rho) * (1.0 - _smoothstep(1.08, 1.25, rho)) * side)[..., None]
        if eye.atrophy > 0:
            tint = np.array([0.95, 0.72, 0.55], np.float32)
            patch[:] = patch * (1.0 - 0.7 * eye.atrophy * band) + tint * 0.7 * eye.atrophy * band
        else:
            patch[:] = patch * (1.0 - 0.4 * (-eye.atrophy) * band * np.array([0.7, 1.0, 1.0], np.float32))
    # A soft glow around the disc: light scattered by the thick nerve-fibre layer at its margin.
    halo = np.exp(-np.clip(rho - 0.95, 0.0, None) / 0.4)[..., None] * (1.0 - disc_a)
    patch[:] = patch * (1.0 + 0.12 * halo * np.array([0.5, 1.0, 0.8], np.float32))
    patch[:] = patch * (1.0 - disc_a) + disc_col * disc_a


def illumination(raster: Raster) -> np.ndarray:
    """How much light reaches the sensor from each point: bright centre, darker towards the rim."""
    X, Y = raster.coords()
    r = np.sqrt(X * X + Y * Y)
    # Real flash illumination falls off steadily from the middle, not only at the rim.
    light = 1.0 - 0.42 * np.clip(r, 0, 1.2) ** 2
    light *= 1.0 - 0.3 * _smoothstep(0.88, 1.0, r)
    return light.astype(np.float32)
