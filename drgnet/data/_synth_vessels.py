"""The vessel tree of the synthetic retina: how arteries and veins grow from the disc, and how they are drawn.

Geometry is in the normalised field coordinates of ``_synth_anatomy`` (the disc on the left).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from drgnet.data._synth_anatomy import Eye, Raster, Vessel, _smoothstep

#: Step along a growing vessel, in field-of-view radii (about 2.4 px at 512 px).
_STEP = 0.01
#: Vessels thinner than this (field radii, ~0.6 px at 512 px) are not followed further.
_MIN_WIDTH = 0.0042
#: Upper bound on growth steps per eye, so a rare bushy tree cannot blow the time budget.
_STEP_BUDGET = 9000


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


def grow_tree(rng: np.random.Generator, eye: Eye) -> list[Vessel]:
    dx, dy = eye.fovea - eye.disc
    axis = math.atan2(dy, dx)
    dist_df = math.hypot(dx, dy)
    dd = eye.unit
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
    dd = eye.unit
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


def _steering(sp: _Sprout, eye: Eye, x: float, y: float, steer: str, target: float) -> tuple[float, float, str, float]:
    """Where a growing vessel would like to go from ``(x, y)``: ``(heading, pull, steer, target)``.

    An arcade follows its ellipse until it is over the macula, then runs on temporally as a free vessel.
    """
    fx, fy = float(eye.fovea[0]), float(eye.fovea[1])
    dx0, dy0 = float(eye.disc[0]), float(eye.disc[1])
    axis = math.atan2(fy - dy0, fx - dx0)
    ca, sa = math.cos(axis), math.sin(axis)
    if steer == "arcade":
        a_, b_ = sp.arc_a, sp.arc_b
        pu = ((x - dx0) * ca + (y - dy0) * sa - a_) / a_
        pv = (-(x - dx0) * sa + (y - dy0) * ca) / b_
        psi = math.atan2(abs(pv), pu)
        if psi < 0.5 * math.pi:
            # Over the macula the arcade turns temporal and runs on, diverging a little.
            target = axis + sp.side * 0.12
            return target, 0.03, "free", target
        # Tangent of the ellipse, plus a pull back onto it if the vessel has wandered off.
        tu, tv = a_ * math.sin(psi), -b_ * math.cos(psi)
        err = math.hypot(pu, pv) - 1.0
        tu -= 2.5 * err * a_ * math.cos(psi)
        tv -= 2.5 * err * b_ * math.sin(psi)
        return axis + math.atan2(sp.side * tv, tu), 0.2, steer, target
    if steer == "macular":
        return math.atan2(fy - y, fx - x), 0.05, steer, target
    return target, 0.03, steer, target


def _branch(
    rng: np.random.Generator, eye: Eye, sp: _Sprout, steer: str, pos: tuple[float, float, float, float], side: float
) -> tuple[_Sprout | None, float, float, float]:
    """Maybe start a side branch at ``pos = (x, y, heading, calibre)`` on ``side``.

    Returns the child (None when it is too thin or not visible), the parent's new calibre and heading, and the
    side the next branch leaves on.
    """
    x, y, th, w = pos
    fx, fy = float(eye.fovea[0]), float(eye.fovea[1])
    dd = eye.unit
    branch_side = side
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
        return None, w, th, branch_side
    # Not every potential twig is visible: thin ones are sparser, nasally more so (the nasal
    # retina is thinner and less richly supplied than the macular side).
    if wc < _MIN_WIDTH * 2.4 and rng.random() < (0.55 if x < float(eye.disc[0]) else 0.3):
        return None, w, th, branch_side
    w *= (1.0 - frac) ** (1.0 / 3.0)
    th -= side * angle * frac * 0.3
    near = math.hypot(fx - x, fy - y) < 2.2 * dd
    child_steer = "macular" if (toward_fovea and near) else "free"
    return _Sprout((x, y), hc, wc, sp.kind, sp.generation + 1, child_steer, target=hc), w, th, branch_side


def _grow_one(rng: np.random.Generator, eye: Eye, sp: _Sprout, budget: int) -> tuple[Vessel, list[_Sprout], int]:
    fx, fy = float(eye.fovea[0]), float(eye.fovea[1])
    dd = eye.unit
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
        desired, pull, steer, target = _steering(sp, eye, x, y, steer, target)
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
            child, w, th, branch_side = _branch(rng, eye, sp, steer, (x, y, th, w), branch_side)
            if child is not None:
                children.append(child)
    vessel = Vessel(np.asarray(pts, dtype=np.float64), np.asarray(ws, dtype=np.float64), sp.kind, sp.generation)
    return vessel, children, steps


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
