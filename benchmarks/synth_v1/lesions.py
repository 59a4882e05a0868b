"""Diabetic retinopathy findings of the synthetic retina: which ones a grade gets, where they go, and how they
are rasterised.

The plan (geometry in normalised field coordinates, see ``_synth_anatomy``) is drawn once per eye and grade and
does not depend on pixels or camera, so the same seed under two camera styles shows the same lesions. The four
masked lesion types (MA, HE, EX, SE) are composited with a per-pixel alpha; their masks are that alpha >= 0.5.
Findings that belong to no mask channel (new vessels, IRMA, venous beading, laser scars) are part of the retina.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.spatial import cKDTree

from drgnet.labels import LESIONS

from .anatomy import Eye, Raster, Vessel

#: Every finding the generator can record, in the order it reports them.
FINDINGS: tuple[str, ...] = (
    "microaneurysms",
    "dot_blot_haemorrhages",
    "flame_haemorrhages",
    "haemorrhages_4_quadrants",
    "hard_exudates",
    "circinate_exudates",
    "cotton_wool_spots",
    "venous_beading",
    "irma",
    "nvd",
    "nve",
    "preretinal_haemorrhage",
    "laser_scars",
)

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


@dataclass
class Pathology:
    """All findings of one eye at one grade."""

    lesions: list[Lesion]
    vessels: list[Vessel]  # the eye's tree after venous beading
    new_vessels: list[Vessel]  # neovascularisation and IRMA, drawn on top of the tree
    scars: list[tuple[float, float, float, float]]  # laser scars: x, y, radius, pigmentation
    findings: tuple[str, ...]


# --------------------------------------------------------------------------------------------- planning


class _Placer:
    """Keeps lesions of different kinds from overlapping (each mask then shows what is visible) and keeps
    them off the disc, off large vessels and inside the part of the field that survives any clipping."""

    def __init__(self, eye: Eye, rng: np.random.Generator):
        self.eye = eye
        self.rng = rng
        self.xy = np.zeros((0, 2))
        self.r = np.zeros(0)
        self.kind: list[str] = []
        pts = [v.points for v in eye.vessels]
        wid = [v.widths for v in eye.vessels]
        self.vpts = np.concatenate(pts)
        self.vwid = np.concatenate(wid)
        self.tree = cKDTree(self.vpts)

    def fits(self, x: float, y: float, r: float, kind: str, vessel_clearance: float | None) -> bool:
        if x * x + y * y > 0.86**2 or abs(y) > 0.76:
            return False
        e = self.eye
        ddisc = math.hypot(x - e.disc[0], (y - e.disc[1]) / e.disc_aspect)
        if ddisc < e.disc_radius * 1.3 + r:
            return False
        if len(self.r):
            d = np.hypot(self.xy[:, 0] - x, self.xy[:, 1] - y)
            other = np.fromiter((k != kind for k in self.kind), bool, len(self.kind))
            if np.any(other & (d < self.r + r + _px(1.5))):
                return False
        if vessel_clearance is not None:
            idx = self.tree.query_ball_point((x, y), r + 0.04)
            if idx:
                idx = np.asarray(idx)
                d = np.hypot(self.vpts[idx, 0] - x, self.vpts[idx, 1] - y)
                w = self.vwid[idx]
                # Only vessels wider than the clearance threshold count as obstacles.
                big = w > vessel_clearance
                if np.any(big & (d < 0.5 * w + r + _px(1.0))):
                    return False
        return True

    def add(self, x: float, y: float, r: float, kind: str) -> None:
        self.xy = np.vstack([self.xy, [x, y]])
        self.r = np.append(self.r, r)
        self.kind.append(kind)

    def near_vessel(self, min_width: float, dmin: float, dmax: float) -> tuple[float, float, float]:
        """A random point on a vessel at least ``min_width`` wide, between dmin and dmax from the disc;
        returns x, y and the vessel direction there."""
        e = self.eye
        d = np.hypot(self.vpts[:, 0] - e.disc[0], self.vpts[:, 1] - e.disc[1])
        ok = np.flatnonzero((self.vwid >= min_width) & (d >= dmin) & (d <= dmax))
        if len(ok) == 0:
            ok = np.flatnonzero(d >= dmin)
        i = int(ok[self.rng.integers(len(ok))])
        j = min(i + 1, len(self.vpts) - 1)
        ang = math.atan2(self.vpts[j, 1] - self.vpts[i, 1], self.vpts[j, 0] - self.vpts[i, 0])
        return float(self.vpts[i, 0]), float(self.vpts[i, 1]), ang


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


def _posterior(rng: np.random.Generator, eye: Eye, spread: float) -> tuple[float, float]:
    """A point of the posterior pole: centred between the macula and the disc, thinning outwards."""
    c = 0.7 * eye.fovea + 0.3 * eye.disc
    x, y = rng.normal(c, spread)
    return float(x), float(y)


def _uniform(rng: np.random.Generator, rmax: float = 0.86) -> tuple[float, float]:
    r = rmax * math.sqrt(rng.random())
    a = rng.uniform(0, 2 * math.pi)
    return r * math.cos(a), r * math.sin(a)


def _place(placer: _Placer, propose, make, tries: int = 30) -> Lesion | None:
    for _ in range(tries):
        x, y = propose()
        les = make(x, y)
        clearance = {"MA": 0.004, "EX": 0.007, "SE": 0.017, "HE": None}[les.kind]
        if les.shape in ("flame", "preretinal"):
            clearance = None
        if placer.fits(x, y, les.radius, les.kind, clearance):
            placer.add(x, y, les.radius, les.kind)
            return les
    return None


def _make_ma(rng: np.random.Generator, x: float, y: float) -> Lesion:
    r = _px(rng.uniform(1.0, 2.5))
    f = rng.uniform(0.9, 1.1)
    return Lesion("MA", "ma", (x, y), r, colour=(0.66 * f, 0.30 * f, 0.42 * f))


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


def _make_dot_blot(rng: np.random.Generator, x: float, y: float, big: bool) -> Lesion:
    # Sizes are skewed: many small dots, fewer large blots, a rare big one.
    if big:
        r = _px(min(12.0, 3.8 * math.exp(abs(rng.normal(0.0, 0.45)))))
    else:
        r = _px(min(4.2, 1.7 * math.exp(abs(rng.normal(0.0, 0.45)))))
    polys = [_blotch(rng, r, 0.35 if big else 0.18, n=44 if big else 28)]
    if big:
        # Blots are a few merged patches: lobes overlapping the main one, so the blot stays one piece.
        for _ in range(int(rng.integers(1, 4))):
            a = rng.uniform(0, 2 * math.pi)
            o = r * rng.uniform(0.35, 0.75)
            lobe = _blotch(rng, r * rng.uniform(0.35, 0.65), 0.3, n=32)
            polys.append(lobe + [o * math.cos(a), o * math.sin(a)])
    ext = max(float(np.hypot(p[:, 0], p[:, 1]).max()) for p in polys)
    # Colour as a transmission factor of a full-density layer of blood: red passes, green and blue are
    # absorbed. Fresh or thin haemorrhages are a lighter, brighter red than old, dense ones.
    f = rng.uniform(0.92, 1.08)
    colour = (min(0.95, 0.70 * f), min(0.9, 0.36 * f**1.5), min(0.9, 0.38 * f**1.5))
    soft = _px(rng.uniform(0.9, 1.4) if big else rng.uniform(0.55, 0.8))
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
    length = _px(rng.uniform(16.0, 40.0))
    width = _px(rng.uniform(5.0, 10.0))
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
    f = rng.uniform(0.94, 1.06)
    return Lesion(
        "HE",
        "flame",
        (x, y),
        ext,
        polys,
        (0.74 * f, 0.36 * f, 0.46 * f),
        softness=_px(0.5),
        seed=int(rng.integers(1 << 31)),
    )


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
    return Lesion("HE", "preretinal", (x, y), ext, [pts], (0.82, 0.2, 0.3), softness=_px(0.4))


def _make_exudate(rng: np.random.Generator, x: float, y: float, big: bool) -> Lesion:
    r = _px(rng.uniform(3.0, 7.0) if big else rng.uniform(1.0, 3.2))
    polys = [_blob(rng, r, 0.45, n=18)]
    if big and rng.random() < 0.5:
        # Larger plaques form where neighbouring flecks coalesce.
        for _ in range(int(rng.integers(1, 4))):
            a = rng.uniform(0, 2 * math.pi)
            o = r * rng.uniform(0.6, 1.1)
            polys.append(_blob(rng, r * rng.uniform(0.35, 0.7), 0.45, n=14) + [o * math.cos(a), o * math.sin(a)])
    ext = max(float(np.hypot(p[:, 0], p[:, 1]).max()) for p in polys)
    # Waxy yellow-white lipid: from creamy white to a deeper yellow, with sharp edges.
    v = rng.uniform(0.9, 1.05)
    yel = rng.uniform(0.25, 1.0)
    colour = (1.12 * v, (1.02 - 0.1 * yel) * v, (0.74 - 0.24 * yel) * v)
    return Lesion("EX", "exudate", (x, y), ext, polys, colour, softness=_px(0.25))


def _make_cotton_wool(rng: np.random.Generator, eye: Eye, x: float, y: float) -> Lesion:
    length = _px(rng.uniform(20.0, 42.0))
    ang = eye.nerve_fibre_angle(x, y) + rng.normal(0.0, 0.3)
    poly = _blob(rng, length / 2.0, 0.3, n=32)
    poly[:, 1] *= rng.uniform(0.5, 0.8)
    polys = [_rotate(poly, ang)]
    # Often a few fluffy puffs run together along the fibres.
    for _ in range(int(rng.integers(0, 3))):
        lobe = _blob(rng, length * rng.uniform(0.2, 0.35), 0.35, n=24)
        o = np.array([rng.uniform(-0.45, 0.45) * length, rng.uniform(-0.15, 0.15) * length])
        polys.append(_rotate(lobe + o, ang))
    soft = length * rng.uniform(0.15, 0.22)
    ext = max(float(np.hypot(p[:, 0], p[:, 1]).max()) for p in polys) + 1.5 * soft
    v = rng.uniform(0.95, 1.05)
    return Lesion(
        "SE",
        "cotton_wool",
        (x, y),
        ext,
        polys,
        (1.06 * v, 0.99 * v, 0.88 * v),
        opacity=rng.uniform(0.75, 0.92),
        softness=soft,
        seed=int(rng.integers(1 << 31)),
    )


def _quadrant_point(rng: np.random.Generator, q: int) -> tuple[float, float]:
    a = rng.uniform(0.15, math.pi / 2 - 0.15) + q * math.pi / 2
    r = rng.uniform(0.25, 0.8)
    return r * math.cos(a), r * math.sin(a)


def plan_pathology(grade: int, eye: Eye, rng: np.random.Generator) -> Pathology:
    """Decide the findings of ``eye`` at ICDR ``grade`` and lay them out.

    Grade 0 none; 1 a few microaneurysms only; 2 microaneurysms plus some haemorrhages and/or exudates or
    cotton-wool spots, short of grade 3; 3 many haemorrhages in all four quadrants and/or venous beading and/or
    IRMA; 4 new vessels at the disc or elsewhere and/or pre-retinal haemorrhage on a grade-3-like background.
    """
    placer = _Placer(eye, rng)
    lesions: list[Lesion] = []
    findings: list[str] = []
    vessels = eye.vessels
    new_vessels: list[Vessel] = []
    scars: list[tuple[float, float, float, float]] = []
    dd = eye.disc_diameter

    def add(les: Lesion | None) -> bool:
        if les is not None:
            lesions.append(les)
            return True
        return False

    def note(name: str) -> None:
        if name not in findings:
            findings.append(name)

    # What this grade gets: counts are drawn up front so the plan reads like the grading rules.
    n_ma = n_dot = n_blot = n_flame = n_ex_clusters = n_se = 0
    per_quadrant = 0
    beading = irma = nvd = nve = preretinal = laser = False
    if grade == 1:
        n_ma = int(rng.integers(1, 9))
    elif grade == 2:
        n_ma = int(rng.integers(4, 25))
        n_dot = int(rng.integers(0, 7))
        n_blot = int(rng.integers(0, 4))
        n_flame = int(rng.integers(0, 3)) if rng.random() < 0.4 else 0
        n_ex_clusters = int(rng.integers(1, 3)) if rng.random() < 0.55 else 0
        n_se = int(rng.integers(1, 4)) if rng.random() < 0.35 else 0
        if n_dot + n_blot + n_flame + n_ex_clusters + n_se == 0:
            n_dot = int(rng.integers(1, 5))
    elif grade >= 3:
        n_ma = int(rng.integers(10, 40))
        haem_route = rng.random() < (0.75 if grade == 3 else 0.5)
        if haem_route:
            per_quadrant = int(rng.integers(5, 11))
        n_dot = int(rng.integers(3, 12))
        n_blot = int(rng.integers(2, 8))
        n_flame = int(rng.integers(2, 8)) if rng.random() < 0.75 else 0
        n_ex_clusters = int(rng.integers(1, 4)) if rng.random() < 0.7 else 0
        n_se = int(rng.integers(1, 6)) if rng.random() < 0.6 else 0
        beading = rng.random() < 0.35
        irma = rng.random() < 0.35
        if grade == 3 and not haem_route and not (beading or irma):
            if rng.random() < 0.5:
                beading = True
            else:
                irma = True
        if grade == 4:
            nvd = rng.random() < 0.55
            nve = rng.random() < 0.5
            preretinal = rng.random() < 0.35
            if not (nvd or nve or preretinal):
                pick = int(rng.integers(3))
                nvd, nve, preretinal = pick == 0, pick == 1, pick == 2
            laser = rng.random() < 0.25

    # Big things first, so small ones fit around them.
    if preretinal:

        def prop():
            x, y, _ = placer.near_vessel(0.012, 2.0 * dd, 4.0 * dd)
            return x + rng.normal(0, 0.03), y + rng.normal(0, 0.03)

        if add(_place(placer, prop, lambda x, y: _make_preretinal(rng, x, y))):
            note("preretinal_haemorrhage")
    if n_se:

        def prop_se():
            # Cotton-wool spots sit in the thick nerve-fibre layer along the arcades, near the disc.
            x, y, ang = placer.near_vessel(0.009, 1.0 * dd, 3.0 * dd)
            off = rng.uniform(0.03, 0.08) * (1 if rng.random() < 0.5 else -1)
            return x - off * math.sin(ang), y + off * math.cos(ang)

        for _ in range(n_se):
            if add(_place(placer, prop_se, lambda x, y: _make_cotton_wool(rng, eye, x, y))):
                note("cotton_wool_spots")
    for _ in range(n_ex_clusters):
        drawn = _exudate_cluster(rng, eye, placer, lesions)
        if drawn:
            note("hard_exudates")
            if drawn == "ring":
                note("circinate_exudates")
    if per_quadrant:
        ok_quadrants = 0
        for q in range(4):
            got = 0
            last: list[Lesion] = []
            for _ in range(per_quadrant):
                big = rng.random() < 0.3
                # Haemorrhages cluster: some grow beside one already there (in the same quadrant).
                seed_les = last[int(rng.integers(len(last)))] if last and rng.random() < 0.4 else None

                def prop_q(q=q, near=seed_les):
                    if near is not None:
                        x = near.centre[0] + rng.normal(0.0, 0.045)
                        y = near.centre[1] + rng.normal(0.0, 0.045)
                        a = math.atan2(y, x) % (2 * math.pi) - q * math.pi / 2
                        if 0.1 < a < math.pi / 2 - 0.1 and x * x + y * y > 0.04:
                            return x, y
                    return _quadrant_point(rng, q)

                les = _place(placer, prop_q, lambda x, y, big=big: _make_dot_blot(rng, x, y, big))
                if add(les):
                    got += 1
                    last.append(les)
            ok_quadrants += got > 0
        if ok_quadrants == 4:
            note("haemorrhages_4_quadrants")
    for n, big in ((n_dot, False), (n_blot, True)):
        for _ in range(n):
            if add(
                _place(placer, lambda: _posterior(rng, eye, 0.38), lambda x, y, big=big: _make_dot_blot(rng, x, y, big))
            ):
                note("dot_blot_haemorrhages")
    for _ in range(n_flame):

        def prop_fl():
            # Flames lie in the thick nerve-fibre layer: around the disc and along the arcades.
            x, y, ang = placer.near_vessel(0.009, 0.7 * dd, 3.0 * dd)
            off = rng.uniform(0.015, 0.04) * (1 if rng.random() < 0.5 else -1)
            return x - off * math.sin(ang), y + off * math.cos(ang)

        if add(_place(placer, prop_fl, lambda x, y: _make_flame(rng, eye, x, y))):
            note("flame_haemorrhages")
    for _ in range(n_ma):
        prop_ma = (lambda: _posterior(rng, eye, 0.32)) if rng.random() < 0.75 else (lambda: _uniform(rng))
        if add(_place(placer, prop_ma, lambda x, y: _make_ma(rng, x, y))):
            note("microaneurysms")

    if beading:
        vessels = _bead_veins(rng, eye)
        if vessels is not eye.vessels:
            note("venous_beading")
    if irma:
        new_vessels += _irma(rng, placer)
        note("irma")
    if nvd:
        new_vessels += _new_vessel_fan(rng, eye.disc, eye.disc_radius * rng.uniform(1.0, 1.7), rng.integers(14, 30))
        note("nvd")
    if nve:
        x, y, _ = placer.near_vessel(0.01, 2.5 * dd, 5.0 * dd)
        new_vessels += _new_vessel_fan(rng, np.array([x, y]), dd * rng.uniform(0.35, 0.7), rng.integers(10, 20))
        note("nve")
    if laser:
        scars = _laser_scars(rng, eye)
        note("laser_scars")
    return Pathology(lesions, vessels, new_vessels, scars, tuple(f for f in FINDINGS if f in findings))


def _exudate_cluster(rng: np.random.Generator, eye: Eye, placer: _Placer, lesions: list[Lesion]) -> str:
    """A cluster of hard exudates near the macula, often a partial ring around a leaking spot."""
    dd = eye.disc_diameter
    a = rng.uniform(0, 2 * math.pi)
    d = dd * rng.uniform(0.4, 1.8)
    cx, cy = eye.fovea + d * np.array([math.cos(a), math.sin(a)])
    ring = rng.random() < 0.55
    n = int(rng.integers(14, 40) if ring else rng.integers(4, 18))
    rr = dd * rng.uniform(0.3, 0.75)
    a0 = rng.uniform(0, 2 * math.pi)
    extent = rng.uniform(2.5, 5.8)
    spread = dd * rng.uniform(0.1, 0.3)
    placed = 0
    for _ in range(n):
        big = rng.random() < 0.2
        if ring:
            t = a0 + rng.uniform(0, extent)
            rad = rr * (1.0 + rng.normal(0.0, 0.08))
            x, y = cx + rad * math.cos(t), cy + rad * math.sin(t)
        else:
            x, y = rng.normal((cx, cy), spread)
        les = _make_exudate(rng, float(x), float(y), big)
        if placer.fits(float(x), float(y), les.radius, "EX", 0.007):
            placer.add(float(x), float(y), les.radius, "EX")
            lesions.append(les)
            placed += 1
    if placed == 0:
        return ""
    return "ring" if ring and placed >= 6 else "cluster"


def _bead_veins(rng: np.random.Generator, eye: Eye) -> list[Vessel]:
    """Venous beading: sausage-like swelling and narrowing along stretches of large veins."""
    cands = [i for i, v in enumerate(eye.vessels) if v.kind == "vein" and v.widths[0] > 0.011 and len(v.points) > 40]
    if not cands:
        return eye.vessels
    chosen = rng.choice(cands, size=min(len(cands), int(rng.integers(2, 4))), replace=False)
    out = list(eye.vessels)
    for i in chosen:
        v = eye.vessels[int(i)]
        n = len(v.points)
        s = np.arange(n) * 0.01
        start = rng.uniform(0.15, 0.45) * s[-1]
        stop = start + rng.uniform(0.2, 0.5)
        window = np.clip(np.minimum(s - start, stop - s) / 0.04, 0.0, 1.0)
        lam = float(np.mean(v.widths)) * rng.uniform(3.5, 5.0)
        amp = rng.uniform(0.7, 1.1)
        mod = 1.0 + window * amp * (np.sin(np.pi * (s - start) / lam) ** 2 - 0.4)
        out[int(i)] = Vessel(v.points, v.widths * mod, v.kind, v.generation)
    return out


def _wiggle(rng: np.random.Generator, start: np.ndarray, heading: float, n: int, step: float, tort: float):
    pts = [start.copy()]
    th = heading
    om = 0.0
    p = start.copy()
    for _ in range(n):
        om = 0.6 * om + rng.normal(0.0, tort)
        th += om
        p = p + step * np.array([math.cos(th), math.sin(th)])
        pts.append(p)
    return np.asarray(pts)


def _irma(rng: np.random.Generator, placer: _Placer) -> list[Vessel]:
    """Intraretinal microvascular abnormalities: a patch of fine, tortuous, irregular vessels beside a vein."""
    dd = placer.eye.disc_diameter
    out = []
    for _ in range(int(rng.integers(1, 3))):
        x, y, _ = placer.near_vessel(0.008, 2.0 * dd, 4.5 * dd)
        c = np.array([x, y])
        for _ in range(int(rng.integers(4, 8))):
            p = _wiggle(
                rng, c + rng.normal(0, 0.2 * dd, 2), rng.uniform(0, 2 * math.pi), int(rng.integers(10, 22)), 0.006, 0.45
            )
            w = np.full(len(p), rng.uniform(0.0032, 0.0045))
            out.append(Vessel(p, w, "artery", 9))
    return out


def _new_vessel_fan(rng: np.random.Generator, centre: np.ndarray, reach: float, n) -> list[Vessel]:
    """New vessels: a fan of fine looping vessels, like the spokes of a wheel, each loop returning on itself."""
    out = []
    base = rng.uniform(0, 2 * math.pi)
    for i in range(int(n)):
        phi = base + 2 * math.pi * i / int(n) + rng.normal(0, 0.25)
        length = reach * rng.uniform(0.4, 1.0)
        t = np.linspace(0.0, 1.0, max(12, int(length / 0.004)))
        along = length * np.sin(np.pi * t) ** 0.8
        lateral = length * rng.uniform(0.12, 0.3) * np.sin(2 * np.pi * t)
        wig = 0.0
        for k in (3, 5, 7, 11):
            wig = wig + length * 0.05 * rng.normal() * np.sin(k * np.pi * t + rng.uniform(0, 6.3))
        lateral = lateral + wig
        c, s = math.cos(phi), math.sin(phi)
        p = centre + rng.normal(0, reach * 0.08, 2)
        pts = np.stack([p[0] + along * c - lateral * s, p[1] + along * s + lateral * c], axis=1)
        w = np.full(len(pts), rng.uniform(0.004, 0.0055))
        out.append(Vessel(pts, w, "artery", 9))
    return out


def _laser_scars(rng: np.random.Generator, eye: Eye) -> list[tuple[float, float, float, float]]:
    """Pan-retinal photocoagulation: rows of round scars in the mid-periphery, sparing the macula and disc."""
    dd = eye.disc_diameter
    r = _px(rng.uniform(4.0, 6.5))
    pitch = r * rng.uniform(2.3, 3.0)
    g = np.arange(-1.0, 1.0, pitch)
    xs, ys = np.meshgrid(g, g)
    xs = xs + rng.normal(0, pitch * 0.15, xs.shape)
    ys = ys + rng.normal(0, pitch * 0.15, ys.shape)
    rad = np.hypot(xs, ys)
    keep = (rad > 0.6) & (rad < 0.97)
    keep &= np.hypot(xs - eye.fovea[0], ys - eye.fovea[1]) > 1.9 * dd
    keep &= np.hypot(xs - eye.disc[0], ys - eye.disc[1]) > 1.5 * dd
    keep &= rng.random(xs.shape) < 0.8
    return [
        (float(x), float(y), r * rng.uniform(0.75, 1.25), rng.uniform(0.3, 1.0))
        for x, y in zip(xs[keep], ys[keep], strict=True)
    ]


# --------------------------------------------------------------------------------------------- rendering


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
        a = np.clip(ext - d + 0.5, 0.0, 1.0)
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
            mix = 0.3 if les.kind == "SE" else 0.1
            colour = col * (1.0 - mix) + bg * mix
            if les.kind == "EX":
                core = cv2.GaussianBlur(a, (0, 0), 1.0)
                colour = colour * (0.92 + 0.12 * core)[..., None]
        patch = alb[y0:y1, x0:x1]
        a3 = a[..., None]
        patch *= 1.0 - a3
        patch += colour * a3
        k = LESIONS.index(les.kind)
        np.maximum(alphas[k, y0:y1, x0:x1], a, out=alphas[k, y0:y1, x0:x1])
    return alphas
