"""Anatomy of the synthetic retina: eye geometry, background, optic disc, macula and the vessel tree.

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

#: Step along a growing vessel, in field-of-view radii (about 2.4 px at 512 px).
_STEP = 0.01
#: Vessels thinner than this (field radii, ~0.6 px at 512 px) are not followed further.
_MIN_WIDTH = 0.0042
#: Upper bound on growth steps per eye, so a rare bushy tree cannot blow the time budget.
_STEP_BUDGET = 9000


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
    """Draw one eye: where the disc and fovea are, fundus pigmentation, texture and the vessel tree."""
    right = bool(rng.random() < 0.5)
    disc_d = rng.uniform(0.29, 0.35)  # a 45-degree field spans about 6-7 disc diameters
    # The disc sits about 2.5 disc diameters nasal to the fovea and a little above it. Photographs are
    # centred somewhere between the macula and the disc; the disc stays well inside the field.
    tilt = rng.normal(0.12, 0.05)
    dist = disc_d * rng.uniform(2.35, 2.7)
    disc = np.array([-rng.uniform(0.5, 0.74) + disc_d / 2 - 0.16, rng.uniform(-0.08, 0.04)])
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
    eye.vessels = _grow_tree(rng, eye)
    return eye


# --------------------------------------------------------------------------------------------- vessel tree


@dataclass
class _Sprout:
    start: tuple[float, float]
    heading: float
    width: float
    kind: str
    generation: int
    steer: str  # "arcade", "free" or "macular"
    side: float = 0.0  # arcades: -1 superior, +1 inferior
    arc_a: float = 0.0  # arcades: semi-axis of the ellipse along the disc-fovea axis
    arc_b: float = 0.0  # arcades: semi-axis across it
    target: float = 0.0  # free vessels: the heading they drift back to


def _wrap(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def _grow_tree(rng: np.random.Generator, eye: Eye) -> list[Vessel]:
    dx, dy = eye.fovea - eye.disc
    axis = math.atan2(dy, dx)
    dist_df = math.hypot(dx, dy)
    dd = eye.disc_diameter
    sprouts: list[_Sprout] = []
    for kind in ("vein", "artery"):
        trunk = 0.026 if kind == "vein" else 0.019
        trunk *= rng.uniform(0.9, 1.1)
        for side in (-1.0, 1.0):
            # Both trunks leave from the cup, veins a little temporal of the arteries.
            off = 0.25 if kind == "vein" else 0.05
            cx = eye.disc[0] + eye.disc_radius * rng.uniform(off - 0.1, off + 0.1)
            cy = eye.disc[1] + side * eye.disc_radius * rng.uniform(0.05, 0.25)
            # Temporal arcade: half an ellipse that starts at the disc and arches about 2 disc diameters
            # above / below the fovea, its far end turning back towards the horizontal raphe.
            arc_a = dist_df * rng.uniform(0.8, 1.0)
            arc_b = dd * rng.uniform(1.8, 2.3)
            sprouts.append(
                _Sprout(
                    (cx, cy),
                    axis + side * rng.uniform(1.25, 1.5),
                    trunk,
                    kind,
                    0,
                    "arcade",
                    side=side,
                    arc_a=arc_a,
                    arc_b=arc_b,
                )
            )
            # Nasal trunk.
            h = axis + side * rng.uniform(1.9, 2.5)
            sprouts.append(_Sprout((cx, cy), h, trunk * rng.uniform(0.65, 0.8), kind, 0, "free", target=h))
        # Small papillomacular and nasal vessels straight off the disc rim.
        for _ in range(int(rng.integers(1, 3))):
            h = axis + rng.normal(0.0, 0.35)
            sprouts.append(_Sprout(_on_rim(eye, h), h, trunk * rng.uniform(0.25, 0.4), kind, 1, "macular"))
        for _ in range(int(rng.integers(1, 3))):
            h = axis + math.pi + rng.normal(0.0, 0.4)
            sprouts.append(_Sprout(_on_rim(eye, h), h, trunk * rng.uniform(0.3, 0.5), kind, 1, "free", target=h))

    vessels: list[Vessel] = []
    budget = _STEP_BUDGET
    n_trunks = len(sprouts)
    i = 0
    while i < len(sprouts) and budget > 0:
        vessel, children, used = _grow_one(rng, eye, sprouts[i], budget)
        budget -= used
        if len(vessel.points) >= 2:
            vessels.append(vessel)
        sprouts.extend(children)
        i += 1
        if i == n_trunks:
            sprouts.extend(_macular_twigs(rng, eye, vessels))
    return vessels


def _macular_twigs(rng: np.random.Generator, eye: Eye, trunks: list[Vessel]) -> list[_Sprout]:
    """Fine branches from the arcades converging on the fovea (they stop at the avascular zone)."""
    dd = eye.disc_diameter
    out = []
    for v in trunks:
        d = np.hypot(v.points[:, 0] - eye.fovea[0], v.points[:, 1] - eye.fovea[1])
        from_disc = np.hypot(v.points[:, 0] - eye.disc[0], v.points[:, 1] - eye.disc[1])
        # Only from the stretch of the arcades that arches above and below the macula.
        near = np.flatnonzero((d > 1.1 * dd) & (d < 2.6 * dd) & (from_disc > 1.3 * dd))
        if len(near) == 0:
            continue
        for j in rng.choice(near, size=min(len(near), int(rng.integers(2, 6))), replace=False):
            x, y = v.points[j]
            h = math.atan2(eye.fovea[1] - y, eye.fovea[0] - x) + rng.normal(0.0, 0.35)
            w = v.widths[j] * rng.uniform(0.28, 0.45)
            if w > _MIN_WIDTH * 1.3:
                out.append(_Sprout((float(x), float(y)), h, w, v.kind, 2, "macular"))
    return out


def _on_rim(eye: Eye, angle: float) -> tuple[float, float]:
    r = eye.disc_radius * 0.85
    return (eye.disc[0] + r * math.cos(angle), eye.disc[1] + r * eye.disc_aspect * math.sin(angle))


def _grow_one(rng: np.random.Generator, eye: Eye, sp: _Sprout, budget: int) -> tuple[Vessel, list[_Sprout], int]:
    fx, fy = float(eye.fovea[0]), float(eye.fovea[1])
    dx0, dy0 = float(eye.disc[0]), float(eye.disc[1])
    axis = math.atan2(fy - dy0, fx - dx0)
    ca, sa = math.cos(axis), math.sin(axis)
    dd = eye.disc_diameter
    faz = dd * rng.uniform(0.22, 0.32)  # the foveal avascular zone: no visible vessel inside
    x, y = sp.start
    th = sp.heading
    w = sp.width
    thin = sp.width < 0.008
    tort = (0.02 if sp.generation == 0 else 0.032) + (0.045 if thin else 0.0)
    # Small vessels wind on a shorter scale than the big ones.
    memory = 0.7 if thin else 0.82
    if sp.kind == "vein":
        tort *= 1.15
    noise = rng.normal(0.0, 1.0, 512).tolist()
    ni = 0
    omega = 0.0
    pts = [(x, y)]
    ws = [w]
    # Calibre is not perfectly smooth: a slow wobble of a few percent along the vessel.
    wob = 0.0
    children: list[_Sprout] = []
    s = 0.0

    def spacing() -> float:
        if sp.steer == "arcade":
            return rng.uniform(0.09, 0.2)
        return rng.uniform(0.1, 0.22) if sp.generation == 0 else rng.uniform(0.14, 0.34)

    next_branch = spacing()
    branch_side = 1.0 if rng.random() < 0.5 else -1.0
    steps = 0
    steer, target = sp.steer, sp.target
    while steps < budget and steps < 4000:
        steps += 1
        # Steering: where the vessel would like to go.
        if steer == "arcade":
            a_, b_ = sp.arc_a, sp.arc_b
            pu = ((x - dx0) * ca + (y - dy0) * sa - a_) / a_
            pv = (-(x - dx0) * sa + (y - dy0) * ca) / b_
            psi = math.atan2(abs(pv), pu)
            if psi < 0.5 * math.pi:
                # Over the macula the arcade turns temporal and runs on, diverging a little.
                steer, target = "free", axis + sp.side * 0.12
                desired, pull = target, 0.03
            else:
                # Tangent of the ellipse, plus a pull back onto it if the vessel has wandered off.
                tu, tv = a_ * math.sin(psi), -b_ * math.cos(psi)
                err = math.hypot(pu, pv) - 1.0
                tu -= 2.5 * err * a_ * math.cos(psi)
                tv -= 2.5 * err * b_ * math.sin(psi)
                desired = axis + math.atan2(sp.side * tv, tu)
                pull = 0.2
        elif steer == "macular":
            desired = math.atan2(fy - y, fx - x)
            pull = 0.05
        else:
            desired = target
            pull = 0.03
        omega = memory * omega + tort * noise[ni % 512]
        ni += 1
        th += pull * _wrap(desired - th) + omega * 0.5
        x += _STEP * math.cos(th)
        y += _STEP * math.sin(th)
        s += _STEP
        # Calibre tapers along the length, faster for thin vessels.
        w *= 1.0 - _STEP * (0.2 + 0.003 / w)
        wob = 0.92 * wob + 0.08 * noise[(ni * 7 + 3) % 512]
        pts.append((x, y))
        ws.append(w * (1.0 + 0.35 * wob))
        r2 = x * x + y * y
        if r2 > 1.06 * 1.06 or w < _MIN_WIDTH:
            break
        dfx, dfy = x - fx, y - fy
        if dfx * dfx + dfy * dfy < faz * faz:
            break
        # Vessels from above and below the macula do not cross the horizontal raphe temporal to the fovea.
        if steer != "arcade" and x > fx + 0.3 * dd and abs(dfy) < 0.01 and s > 0.05:
            break
        if s >= next_branch:
            next_branch = s + spacing()
            side = branch_side
            # Arcades branch to both sides in turn, feeding the macula on one side and the periphery on the other.
            alternate = 1.0 if steer == "arcade" else 0.75
            branch_side = -branch_side if rng.random() < alternate else branch_side
            hc = th + side * rng.uniform(0.55, 1.15)
            toward_fovea = math.cos(_wrap(hc - math.atan2(fy - y, fx - x))) > 0.55
            if rng.random() < 0.1 and sp.generation > 0:
                frac = rng.uniform(0.4, 0.5)  # a near-symmetric fork
                angle = rng.uniform(0.3, 0.55)
                hc = th + side * angle
            else:
                # Branches towards the macula are small: the macula is fed by fine twigs from the arcades.
                frac = rng.uniform(0.04, 0.15) if toward_fovea else rng.uniform(0.1, 0.4)
                angle = abs(_wrap(hc - th))
            wc = w * frac ** (1.0 / 3.0)
            if wc < _MIN_WIDTH * 1.3:
                continue
            # Not every potential twig is visible: thin ones are sparser, nasally more so (the nasal
            # retina is thinner and less richly supplied than the macular side).
            if wc < _MIN_WIDTH * 2.4 and rng.random() < (0.55 if x < dx0 else 0.3):
                continue
            w *= (1.0 - frac) ** (1.0 / 3.0)
            th -= side * angle * frac * 0.3
            near = math.hypot(fx - x, fy - y) < 2.2 * dd
            child_steer = "macular" if (toward_fovea and near) else "free"
            children.append(_Sprout((x, y), hc, wc, sp.kind, sp.generation + 1, child_steer, target=hc))
    vessel = Vessel(np.asarray(pts, dtype=np.float64), np.asarray(ws, dtype=np.float64), sp.kind, sp.generation)
    return vessel, children, steps


# --------------------------------------------------------------------------------------------- rendering


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
    alb *= 1.0 + (0.02 * grain)[..., None] * np.array([0.6, 1.0, 1.0], np.float32)
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
    alb *= (1.0 + 0.012 * fine + 0.01 * cho)[..., None]
    _striation(eye, X, Y, alb, fibres)

    # Macula: darker and browner (luteal pigment absorbs blue), with a small darker foveal pit.
    fx, fy = eye.fovea
    dd = eye.disc_diameter
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
    r = np.sqrt(dx * dx + dy * dy) / eye.disc_diameter
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
    disc_a = (1.0 - _smoothstep(0.82, 1.08, rho))[..., None]
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
    patch[:] = patch * (1.0 + 0.3 * halo * np.array([0.5, 1.0, 0.8], np.float32))
    patch[:] = patch * (1.0 - disc_a) + disc_col * disc_a


def illumination(raster: Raster) -> np.ndarray:
    """How much light reaches the sensor from each point: bright centre, darker towards the rim."""
    X, Y = raster.coords()
    r = np.sqrt(X * X + Y * Y)
    # Real flash illumination falls off steadily from the middle, not only at the rim.
    light = 1.0 - 0.42 * np.clip(r, 0, 1.2) ** 2
    light *= 1.0 - 0.3 * _smoothstep(0.88, 1.0, r)
    return light.astype(np.float32)


def _draw_layer(
    canvases: dict[str, np.ndarray],
    vessels: list[Vessel],
    raster: Raster,
    ss: int,
) -> None:
    """Draw vessels on supersampled canvases: full calibre, a central core (the darker middle of a round
    vessel) and the thin central light reflex of the larger vessels."""
    shift = 3
    for ves in vessels:
        if len(ves.points) < 2:
            continue
        # Continuous pixel coordinates -> supersampled pixel centres, in fixed point.
        pts = np.round((raster.to_px(ves.points) * ss - 0.5) * (1 << shift)).astype(np.int32)
        wpx = ves.widths * (raster.radius * ss)
        wseg = 0.5 * (wpx[1:] + wpx[:-1])
        # Small vessels carry a thinner column of blood, so they are also paler; sub-pixel ones are drawn
        # one supersampled pixel wide and fainter in proportion.
        thick = np.maximum(1, np.round(wseg)).astype(np.int32)
        wreal = wseg / ss
        shade = np.where(wseg >= 1.0, 255 * np.minimum(1.0, 0.35 + 0.65 * wreal / 4.0), 120 * wseg)
        # Slight variation of the blood column's density along the vessel (same for any pixel scale).
        sl = np.cumsum(np.hypot(*np.diff(ves.points, axis=0).T))
        phase = float(ves.points[0, 0] * 917.0 + ves.points[0, 1] * 331.0)
        shade = shade * (0.9 + 0.1 * np.sin(sl / 0.05 + phase) * np.sin(sl / 0.13 + 0.7 * phase))
        shade = (np.round(shade / 4.0) * 4.0).astype(np.int32)
        layers = (
            (canvases[ves.kind], thick, shade, wseg > 0),
            (canvases[ves.kind + "_core"], np.maximum(1, np.round(wseg * 0.5)).astype(np.int32), 255, wseg >= 2.5),
            (
                canvases[ves.kind + "_reflex"],
                np.maximum(1, np.round(wseg * 0.2)).astype(np.int32),
                255,
                wseg >= 2.8 * ss,
            ),
        )
        for canvas, th, val, on in layers:
            if not on.any():
                continue
            vals = np.broadcast_to(np.asarray(val), th.shape)
            # Draw runs of segments with the same thickness and shade as one polyline: far fewer calls.
            key = th.astype(np.int64) * 4096 + vals * 2 + on
            cut = np.flatnonzero(np.diff(key)) + 1
            for a, b in zip(np.r_[0, cut], np.r_[cut, len(key)], strict=True):
                if on[a]:
                    cv2.polylines(canvas, [pts[a : b + 1]], False, int(vals[a]), int(th[a]), cv2.LINE_8, shift)


def render_vessels(
    alb: np.ndarray,
    background: np.ndarray,
    eye: Eye,
    raster: Raster,
    tree: list[Vessel],
    extra: list[Vessel],
) -> None:
    """Composite the vessel ``tree`` (and pathological vessels in ``extra``) onto the albedo, in place."""
    size = raster.size
    ss = 3 if size <= 768 else 2
    big = size * ss
    layers = {}
    for kind in ("vein", "artery"):
        for suffix in ("", "_core", "_reflex"):
            layers[kind + suffix] = np.zeros((big, big), np.uint8)
    _draw_layer(layers, tree, raster, ss)
    fade = _disc_fade(eye, raster)
    extra_layers = {k: np.zeros((big, big), np.uint8) for k in layers} if extra else None
    if extra_layers is not None:
        _draw_layer(extra_layers, extra, raster, ss)

    def down(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) * (1.0 / 255.0)

    # Vessel colour is relative to the local background: the blood column absorbs green and blue strongly
    # and red only a little, which is why vessels are dark red rather than black.
    # Real vessels are a lighter red than a full blood column would make them (thin walls scatter light back).
    colours = {
        "vein": np.array([0.85, 0.55, 0.57], np.float32),
        "artery": np.array([0.95, 0.72, 0.74], np.float32),
    }
    # Vessel walls are round, so the edge of a vessel is soft, not a cut-out line.
    edge = max(0.35, 0.0012 * raster.radius)
    for kind in ("vein", "artery"):  # arteries cross over veins more often than not
        cov = cv2.GaussianBlur(down(layers[kind]), (0, 0), edge)
        core = down(layers[kind + "_core"])
        refl = down(layers[kind + "_reflex"])
        if fade is not None:
            cov *= fade
            core *= fade
            refl *= fade
        if extra_layers is not None:
            cov = np.maximum(cov, down(extra_layers[kind]))
            core = np.maximum(core, down(extra_layers[kind + "_core"]))
        col = background * colours[kind]
        a = cov[..., None]
        alb *= 1.0 - a
        alb += col * a
        core_dark = 0.08 if kind == "vein" else 0.05
        alb *= 1.0 - core_dark * cv2.GaussianBlur(core, (0, 0), 0.6)[..., None]
        refl_s = 0.10 if kind == "artery" else 0.05
        alb += refl_s * cv2.GaussianBlur(refl, (0, 0), 0.5)[..., None] * background


def _disc_fade(eye: Eye, raster: Raster) -> np.ndarray | None:
    """Vessels dive into the cup, so they fade towards the disc centre."""
    X, Y = raster.coords()
    d = np.sqrt((X - eye.disc[0]) ** 2 + ((Y - eye.disc[1]) / eye.disc_aspect) ** 2) / eye.disc_radius
    return (0.55 + 0.45 * _smoothstep(0.05, 0.6, d)).astype(np.float32)
