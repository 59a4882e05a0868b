"""Diabetic retinopathy findings of the synthetic retina: which ones a grade gets and where they go.

The plan (geometry in normalised field coordinates, see ``_synth_anatomy``) is drawn once per eye and grade and
does not depend on pixels or camera, so the same seed under two camera styles shows the same lesions. Findings that
belong to no mask channel (new vessels, IRMA, venous beading, laser scars) are part of the retina.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from drgnet.data._synth_anatomy import Eye, Vessel
from drgnet.data._synth_lesions import (
    Lesion,
    _make_cotton_wool,
    _make_dot_blot,
    _make_exudate,
    _make_flame,
    _make_ma,
    _make_preretinal,
    _px,
)

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


@dataclass
class Pathology:
    """All findings of one eye at one grade."""

    lesions: list[Lesion]
    vessels: list[Vessel]  # the eye's tree after venous beading
    new_vessels: list[Vessel]  # neovascularisation and IRMA, drawn on top of the tree
    scars: list[tuple[float, float, float, float]]  # laser scars: x, y, radius, pigmentation
    findings: tuple[str, ...]


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


def _quadrant_point(rng: np.random.Generator, q: int) -> tuple[float, float]:
    a = rng.uniform(0.15, math.pi / 2 - 0.15) + q * math.pi / 2
    r = rng.uniform(0.25, 0.8)
    return r * math.cos(a), r * math.sin(a)


@dataclass
class _Counts:
    """What one grade gets, drawn up front so the plan reads like the grading rules."""

    # How many to place of each kind: "ma", "dot", "blot", "flame", "ex_clusters", "se".
    lesions: dict[str, int] = field(default_factory=dict)
    per_quadrant: int = 0  # haemorrhages tried in each quadrant (the 4-2-1 rule's "all four quadrants")
    vascular: set[str] = field(default_factory=set)  # venous_beading, irma, nvd, nve, preretinal_haemorrhage, laser

    def n(self, kind: str) -> int:
        return self.lesions.get(kind, 0)


def _grade_counts(grade: int, rng: np.random.Generator) -> _Counts:
    c = _Counts()
    # Real DR photographs (IDRiD segmentation set, grades 2-4) show a median of 22-30 microaneurysms, 14-18
    # haemorrhages and over 100 exudate specks (drgnet synth-stats on ../shared/data/idrid-train4).
    if grade == 1:
        c.lesions["ma"] = int(rng.integers(2, 11))
    elif grade == 2:
        # Dozens of faint microaneurysms and a few small dot / blot haemorrhages.
        c.lesions["ma"] = int(rng.integers(10, 40))
        c.lesions["dot"] = int(rng.integers(3, 12))
        c.lesions["blot"] = int(rng.integers(0, 4))
        c.lesions["flame"] = int(rng.integers(1, 3)) if rng.random() < 0.25 else 0
        c.lesions["ex_clusters"] = int(rng.integers(2, 5)) if rng.random() < 0.6 else 0
        c.lesions["se"] = int(rng.integers(1, 3)) if rng.random() < 0.3 else 0
    elif grade >= 3:
        c.lesions["ma"] = int(rng.integers(15, 50))
        haem_route = rng.random() < (0.75 if grade == 3 else 0.5)
        if haem_route:
            c.per_quadrant = int(rng.integers(5, 10))
        c.lesions["dot"] = int(rng.integers(6, 16))
        c.lesions["blot"] = int(rng.integers(1, 6))
        c.lesions["flame"] = int(rng.integers(1, 4)) if rng.random() < 0.5 else 0
        c.lesions["ex_clusters"] = int(rng.integers(2, 6)) if rng.random() < 0.75 else 0
        c.lesions["se"] = int(rng.integers(1, 5)) if rng.random() < 0.6 else 0
        beading = rng.random() < 0.35
        irma = rng.random() < 0.35
        if grade == 3 and not haem_route and not (beading or irma):
            if rng.random() < 0.5:
                beading = True
            else:
                irma = True
        c.vascular |= {name for name, on in (("venous_beading", beading), ("irma", irma)) if on}
        if grade == 4:
            c.vascular |= _proliferative(rng)
    return c


def _proliferative(rng: np.random.Generator) -> set[str]:
    nvd = rng.random() < 0.55
    nve = rng.random() < 0.5
    preretinal = rng.random() < 0.35
    if not (nvd or nve or preretinal):
        pick = int(rng.integers(3))
        nvd, nve, preretinal = pick == 0, pick == 1, pick == 2
    laser = rng.random() < 0.25
    found = (("nvd", nvd), ("nve", nve), ("preretinal_haemorrhage", preretinal), ("laser_scars", laser))
    return {name for name, on in found if on}


class _Plan:
    """The lesions and findings of one eye as they are placed."""

    def __init__(self, eye: Eye, rng: np.random.Generator):
        self.eye = eye
        self.rng = rng
        self.placer = _Placer(eye, rng)
        self.lesions: list[Lesion] = []
        self.findings: list[str] = []

    def add(self, les: Lesion | None) -> bool:
        if les is not None:
            self.lesions.append(les)
            return True
        return False

    def note(self, name: str) -> None:
        if name not in self.findings:
            self.findings.append(name)

    def place(self, propose, make, finding: str) -> Lesion | None:
        les = _place(self.placer, propose, make)
        if self.add(les):
            self.note(finding)
        return les


def plan_pathology(grade: int, eye: Eye, rng: np.random.Generator) -> Pathology:
    """Decide the findings of ``eye`` at ICDR ``grade`` and lay them out.

    Grade 0 none; 1 a few microaneurysms only; 2 microaneurysms plus some haemorrhages and/or exudates or
    cotton-wool spots, short of grade 3; 3 many haemorrhages in all four quadrants and/or venous beading and/or
    IRMA; 4 new vessels at the disc or elsewhere and/or pre-retinal haemorrhage on a grade-3-like background.
    """
    counts = _grade_counts(grade, rng)
    plan = _Plan(eye, rng)
    # Big things first, so small ones fit around them.
    _place_large(plan, counts)
    if counts.per_quadrant:
        _place_quadrant_haemorrhages(plan, counts.per_quadrant)
    _place_small(plan, counts)
    vessels, new_vessels, scars = _vascular(plan, counts)
    findings = tuple(f for f in FINDINGS if f in plan.findings)
    return Pathology(plan.lesions, vessels, new_vessels, scars, findings)


def _place_large(plan: _Plan, c: _Counts) -> None:
    """Pre-retinal haemorrhage, cotton-wool spots and exudate clusters."""
    rng, eye, placer = plan.rng, plan.eye, plan.placer
    dd = eye.unit
    if "preretinal_haemorrhage" in c.vascular:

        def prop():
            x, y, _ = placer.near_vessel(0.012, 2.0 * dd, 4.0 * dd)
            return x + rng.normal(0, 0.03), y + rng.normal(0, 0.03)

        plan.place(prop, lambda x, y: _make_preretinal(rng, x, y), "preretinal_haemorrhage")

    # Cotton-wool spots sit in the thick nerve-fibre layer along the arcades, near the disc.
    prop_se = _beside_vessel(placer, (1.0 * dd, 3.0 * dd), (0.03, 0.08))
    for _ in range(c.n("se")):
        plan.place(prop_se, lambda x, y: _make_cotton_wool(rng, eye, x, y), "cotton_wool_spots")
    for _ in range(c.n("ex_clusters")):
        drawn = _exudate_cluster(rng, eye, placer, plan.lesions)
        if drawn:
            plan.note("hard_exudates")
            if drawn == "ring":
                plan.note("circinate_exudates")


def _beside_vessel(placer: _Placer, from_disc: tuple[float, float], offset: tuple[float, float]):
    """A proposal beside a vessel at least 0.009 wide, ``from_disc`` (min, max) away from the disc, offset to
    a random side by ``offset`` (min, max): where the nerve-fibre layer is thick."""
    rng = placer.rng

    def propose() -> tuple[float, float]:
        x, y, ang = placer.near_vessel(0.009, *from_disc)
        off = rng.uniform(*offset) * (1 if rng.random() < 0.5 else -1)
        return x - off * math.sin(ang), y + off * math.cos(ang)

    return propose


def _place_quadrant_haemorrhages(plan: _Plan, per_quadrant: int) -> None:
    rng = plan.rng
    ok_quadrants = 0
    for q in range(4):
        got = 0
        last: list[Lesion] = []
        for _ in range(per_quadrant):
            big = rng.random() < 0.35
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

            les = _place(plan.placer, prop_q, lambda x, y, big=big: _make_dot_blot(rng, x, y, big))
            if plan.add(les):
                got += 1
                last.append(les)
        ok_quadrants += got > 0
    if ok_quadrants == 4:
        plan.note("haemorrhages_4_quadrants")


def _place_small(plan: _Plan, c: _Counts) -> None:
    """Dot and blot haemorrhages, flames and microaneurysms, around what is already there."""
    rng, eye, placer = plan.rng, plan.eye, plan.placer
    dd = eye.unit
    for n, big in ((c.n("dot"), False), (c.n("blot"), True)):
        for _ in range(n):
            plan.place(
                lambda: _posterior(rng, eye, 0.38),
                lambda x, y, big=big: _make_dot_blot(rng, x, y, big),
                "dot_blot_haemorrhages",
            )

    # Flames lie in the thick nerve-fibre layer: around the disc and along the arcades.
    prop_fl = _beside_vessel(placer, (0.7 * dd, 3.0 * dd), (0.015, 0.04))
    for _ in range(c.n("flame")):
        plan.place(prop_fl, lambda x, y: _make_flame(rng, eye, x, y), "flame_haemorrhages")
    for _ in range(c.n("ma")):
        prop_ma = (lambda: _posterior(rng, eye, 0.32)) if rng.random() < 0.75 else (lambda: _uniform(rng))
        plan.place(prop_ma, lambda x, y: _make_ma(rng, x, y), "microaneurysms")


def _vascular(plan: _Plan, c: _Counts) -> tuple[list[Vessel], list[Vessel], list[tuple[float, float, float, float]]]:
    """Venous beading, IRMA, new vessels and laser scars: the tree, the extra vessels and the scars."""
    rng, eye, placer = plan.rng, plan.eye, plan.placer
    dd = eye.unit
    vessels = eye.vessels
    new_vessels: list[Vessel] = []
    scars: list[tuple[float, float, float, float]] = []
    if "venous_beading" in c.vascular:
        vessels = _bead_veins(rng, eye)
        if vessels is not eye.vessels:
            plan.note("venous_beading")
    if "irma" in c.vascular:
        new_vessels += _irma(rng, placer)
        plan.note("irma")
    if "nvd" in c.vascular:
        new_vessels += _new_vessel_fan(rng, eye.disc, eye.disc_radius * rng.uniform(1.0, 1.7), rng.integers(14, 30))
        plan.note("nvd")
    if "nve" in c.vascular:
        x, y, _ = placer.near_vessel(0.01, 2.5 * dd, 5.0 * dd)
        new_vessels += _new_vessel_fan(rng, np.array([x, y]), dd * rng.uniform(0.35, 0.7), rng.integers(10, 20))
        plan.note("nve")
    if "laser_scars" in c.vascular:
        scars = _laser_scars(rng, eye)
        plan.note("laser_scars")
    return vessels, new_vessels, scars


def _exudate_cluster(rng: np.random.Generator, eye: Eye, placer: _Placer, lesions: list[Lesion]) -> str:
    """Hard exudates near the macula: many small specks, either a partial (circinate) ring around a leaking
    spot or a cluster of a few tight groups, with a scatter of lone specks around them."""
    dd = eye.unit
    a = rng.uniform(0, 2 * math.pi)
    d = dd * rng.uniform(0.3, 1.8)
    cx, cy = eye.fovea + d * np.array([math.cos(a), math.sin(a)])
    ring = rng.random() < 0.5
    n = int(rng.integers(70, 180) if ring else rng.integers(60, 150))
    rr = dd * rng.uniform(0.35, 0.9)
    a0 = rng.uniform(0, 2 * math.pi)
    extent = rng.uniform(2.5, 5.8)
    spread = dd * rng.uniform(0.2, 0.5)
    # Specks come in tight groups (a few speck diameters apart), groups spread over the cluster.
    groups = rng.normal((cx, cy), spread, (int(rng.integers(5, 14)), 2))
    placed = 0
    for _ in range(n):
        big = rng.random() < 0.1
        if ring:
            t = a0 + rng.uniform(0, extent)
            rad = rr * (1.0 + rng.normal(0.0, 0.12))
            x, y = cx + rad * math.cos(t), cy + rad * math.sin(t)
        elif rng.random() < 0.8:
            x, y = groups[int(rng.integers(len(groups)))] + rng.normal(0.0, 0.2 * dd, 2)
        else:
            x, y = rng.normal((cx, cy), 2.0 * spread)
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
    dd = placer.eye.unit
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
    dd = eye.unit
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
