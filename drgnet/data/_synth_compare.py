"""Our photographs beside real ones, for the eye: whole photographs side by side, and crops of every lesion kind
taken from the real IDRiD originals at full resolution beside crops of the same physical size from ours.

The statistics (``lesion_stats``, ``anatomy_stats``) hold the generator to real photographs by numbers; these
sheets show what the numbers miss. The real photographs are whatever this machine has (``real_samples``): they are
copied only into the output folder, which gets a ``.gitignore`` of ``*`` and a README naming each photograph's
licence, and must never be committed.
"""

from __future__ import annotations

import datetime as _dt
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from drgnet.data import preprocess, real_samples
from drgnet.data._synth_camera import STYLES
from drgnet.data._synth_cohort import _atomic_write
from drgnet.data._synth_fundus import GENERATORS, SyntheticFundus, _check_size, generate_fundus
from drgnet.data._synth_preview import _label
from drgnet.labels import LESION_COLOURS, LESIONS

TILE = 256  # side of a whole photograph on photographs.png
CROP = 96  # side of a real lesion crop, in pixels of the full-resolution original
ZOOM = 2  # nearest-neighbour enlargement of a real crop: one original pixel is ZOOM x ZOOM on the sheet
GAP = 4  # between cells
HEADER = 48  # the caption strip above a sheet: two lines
_BG = 40
# Typical components are drawn at random among the 3k closest to the median size, so one seed shows one set.
_TYPICAL_POOL = 3


@dataclass(frozen=True)
class LesionCrop:
    """One square cut around a lesion component, before enlargement.

    Attributes:
        source: The photograph, e.g. ``"IDRiD_01"`` or ``"v2 SYN_00003"``.
        lesion: ``MA``, ``HE``, ``EX`` or ``SE``.
        centre: ``(y, x)`` in the photograph's pixels: a pixel of the component, the closest to its centroid.
        box: ``(y0, x0, y1, x1)`` of the cut (exclusive ends); beyond the photograph's edge it is black.
        image: ``(side, side, 3)`` uint8, the photograph's own pixels.
        mask: ``(side, side)`` bool, the lesion's mask over the same pixels.
    """

    source: str
    lesion: str
    centre: tuple[int, int]
    box: tuple[int, int, int, int]
    image: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)


@dataclass
class Comparison:
    """What ``write_comparison`` wrote and from which real photographs."""

    photographs: Path
    lesions: Path | None
    readme: Path
    used: list[tuple[str, Path]]
    missing: list[str]
    left_out: list[str]


def real_photographs() -> tuple[list[tuple[str, Path]], list[str]]:
    """Every real photograph found (``real_samples.photographs()``) and a line per source that is missing."""
    missing = []
    if real_samples.idrid_train4_dir() is None:
        missing.append(
            "IDRiD with lesion masks: no data/idrid-train4 in $DRGNET_SHARED_DIR or ../shared (lesions.png needs it)"
        )
    if not real_samples.sample_photographs():
        missing.append(
            f"sample photographs (DRIVE, CHASE_DB1, HRF): none in {real_samples.samples_dir()} "
            "(run scripts/fetch_real_samples.sh, or set $DRGNET_SAMPLES_DIR)"
        )
    if real_samples.skimage_retina() is None:
        missing.append("scikit-image's data/retina.jpg: not shipped with the installed scikit-image")
    return real_samples.photographs(), missing


def synthetic_plan(n: int) -> list[tuple[int, str]]:
    """``(grade, camera style)`` of the ``n`` synthetic photographs of a row: grades spread over 0-4, styles in turn."""
    grades = np.rint(np.linspace(0, 4, n)).astype(int) if n > 1 else np.array([3])
    names = list(STYLES)
    return [(int(g), names[i % len(names)]) for i, g in enumerate(grades)]


# --- cutting -------------------------------------------------------------------------------------------------------


def cut(a: np.ndarray, cy: int, cx: int, side: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The ``side x side`` square of ``a`` whose centre pixel is ``(cy, cx)``, black beyond the edge, and its box."""
    y0, x0 = cy - side // 2, cx - side // 2
    out = np.zeros((side, side) + a.shape[2:], a.dtype)
    sy0, sx0 = max(y0, 0), max(x0, 0)
    sy1, sx1 = min(y0 + side, a.shape[0]), min(x0 + side, a.shape[1])
    if sy1 > sy0 and sx1 > sx0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = a[sy0:sy1, sx0:sx1]
    return out, (y0, x0, y0 + side, x0 + side)


def components(mask: np.ndarray) -> list[tuple[int, int, int]]:
    """Connected lesion regions (8-connected) as ``(area, cy, cx)``: the region's pixel closest to its centroid."""
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    found = []
    for i in range(1, count):
        x, y, w, h = stats[i, :4]
        ys, xs = np.nonzero(labels[y : y + h, x : x + w] == i)
        d = (ys + y - centroids[i, 1]) ** 2 + (xs + x - centroids[i, 0]) ** 2
        j = int(np.argmin(d))
        found.append((int(stats[i, cv2.CC_STAT_AREA]), int(ys[j] + y), int(xs[j] + x)))
    return found


def pick_typical(
    candidates: list[tuple[int, int, int, int]], k: int, spacing: int, rng: np.random.Generator
) -> list[tuple[int, int, int, int]]:
    """``k`` of ``(photo, area, cy, cx)``, preferring median-sized ones, no two of one photo within ``spacing``.

    The ``_TYPICAL_POOL * k`` candidates closest to the median area (on a log scale) come first, in an order the
    ``rng`` shuffles; the rest follow by closeness, for when spacing rules out too many.
    """
    if not candidates:
        return []
    areas = np.array([c[1] for c in candidates], np.float64)
    typical = np.abs(np.log(areas) - np.log(np.median(areas)))
    order = list(np.argsort(typical, kind="stable"))
    head = order[: _TYPICAL_POOL * k]
    order = [head[i] for i in rng.permutation(len(head))] + order[len(head) :]
    picked: list[tuple[int, int, int, int]] = []
    for i in order:
        photo, _, cy, cx = candidates[i]
        if all(p != photo or max(abs(cy - y), abs(cx - x)) >= spacing for p, _, y, x in picked):
            picked.append(candidates[i])
            if len(picked) == k:
                break
    return picked


def _lesion_crops(
    photos: list[tuple[str, np.ndarray, np.ndarray]], k: int, side: int | list[int], seed: int, stream: int
) -> dict[str, list[LesionCrop]]:
    """Per lesion, ``k`` crops of typical components of ``photos`` (``(name, image, masks)``); ``side`` per photo."""
    sides = side if isinstance(side, list) else [side] * len(photos)
    out: dict[str, list[LesionCrop]] = {}
    for li, lesion in enumerate(LESIONS):
        candidates = [(p, *c) for p, (_, _, masks) in enumerate(photos) for c in components(masks[li])]
        rng = np.random.default_rng(np.random.SeedSequence([int(seed) % (1 << 63), stream, li]))
        crops = []
        for p, _, cy, cx in pick_typical(candidates, k, max(sides) // 2, rng):
            name, image, masks = photos[p]
            img, box = cut(image, cy, cx, sides[p])
            msk, _ = cut(masks[li].astype(bool), cy, cx, sides[p])
            crops.append(LesionCrop(name, lesion, (cy, cx), box, img, msk))
        out[lesion] = crops
    return out


def fov_diameter(image: np.ndarray, source: str) -> float:
    """Diameter of the photograph's field of view in pixels (the fitted circle, as preprocessing finds it)."""
    return 2.0 * preprocess.find_fov(image, source=source).radius


def real_lesion_crops(
    idrid_dir: Path, k: int, crop: int = CROP, seed: int = 0
) -> tuple[dict[str, list[LesionCrop]], float]:
    """Crops of ``crop`` original pixels around typical lesion components of the IDRiD photographs in ``idrid_dir``.

    Returns:
        Per lesion the crops, and their side as a share of the field-of-view diameter (mean over the photographs).

    Raises:
        ValueError: ``idrid_dir`` is not IDRiD's segmentation layout, or holds no photograph with masks.
    """
    from drgnet.data.readers import open_dataset

    photos, diameters = [], []
    for sample in open_dataset(idrid_dir, layout="idrid-seg", split="train"):
        if sample.masks is None:
            continue
        photos.append((sample.name, sample.image, sample.masks))
        diameters.append(fov_diameter(sample.image, str(sample.path)))
    if not photos:
        raise ValueError(f"{idrid_dir}: no IDRiD photograph with lesion masks")
    return _lesion_crops(photos, k, crop, seed, stream=0), crop / float(np.mean(diameters))


def synthetic_lesion_crops(
    photos: list[SyntheticFundus], label: str, k: int, share: float, seed: int
) -> dict[str, list[LesionCrop]]:
    """Crops of ``share`` of each photograph's field-of-view diameter around typical lesion components."""
    items = [(f"{label} {f.name}", f.image, f.masks) for f in photos]
    sides = [max(3, int(round(share * fov_diameter(f.image, f.name)))) for f in photos]
    return _lesion_crops(items, k, sides, seed, stream=1 + GENERATORS.index(label))


# --- sheets --------------------------------------------------------------------------------------------------------


def _header(width: int, text: str) -> np.ndarray:
    strip = np.full((HEADER, width, 3), _BG, np.uint8)
    # About 9 px a character at this font size.
    for i, line in enumerate(textwrap.wrap(text, max(10, (width - 16) // 9), max_lines=2, placeholder=" ...")):
        cv2.putText(strip, line, (8, 19 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return strip


def grid(rows: list[list[np.ndarray]], cols: int, cell: int, caption: str) -> np.ndarray:
    """Cells of ``cell x cell`` in ``rows`` (short rows padded), ``GAP`` apart, under a caption strip."""
    blank = np.full((cell, cell, 3), _BG, np.uint8)
    vgap = np.full((cell, GAP, 3), _BG, np.uint8)
    lines = []
    for row in rows:
        row = list(row) + [blank] * (cols - len(row))
        parts = [p for c in row for p in (c, vgap)][:-1]
        lines.append(np.concatenate(parts, axis=1))
    width = cols * cell + (cols - 1) * GAP
    hgap = np.full((GAP, width, 3), _BG, np.uint8)
    body = [p for line in lines for p in (line, hgap)][:-1]
    return np.concatenate([_header(width, caption), *body], axis=0)


def _tile(image: np.ndarray, source: str, tile: int, text: str, check_fundus: bool = True) -> np.ndarray:
    out = preprocess.preprocess(image, tile, source=source, check_fundus=check_fundus).image.copy()
    _label(out, text, tile / 384.0)
    return out


def enlarge(crop: np.ndarray, cell: int) -> tuple[np.ndarray, int]:
    """``crop`` enlarged by the largest whole factor that fits ``cell`` (nearest neighbour), and that factor."""
    zoom = max(1, cell // crop.shape[0])
    return np.kron(crop, np.ones((zoom, zoom) + (1,) * (crop.ndim - 2), crop.dtype)), zoom


def _crop_cell(crop: LesionCrop, cell: int, outline: bool) -> np.ndarray:
    big, zoom = enlarge(crop.image, cell)
    if outline:
        # Outlined after enlarging, so the line stays one sheet pixel thin whatever the zoom.
        m = enlarge(crop.mask.astype(np.uint8), cell)[0]
        edge = (m - cv2.erode(m, np.ones((3, 3), np.uint8))).astype(bool)
        big[edge] = LESION_COLOURS[crop.lesion]
    out = np.full((cell, cell, 3), _BG, np.uint8)
    o = (cell - big.shape[0]) // 2
    out[o : o + big.shape[0], o : o + big.shape[1]] = big[:cell, :cell]
    _label(out, f"{crop.source} {crop.lesion}", cell / 288.0)
    if zoom > 1:
        cv2.putText(out, f"x{zoom}", (6, cell - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def lesion_sheet(
    sources: list[tuple[str, dict[str, list[LesionCrop]]]], k: int, cell: int, outline: bool, caption: str
) -> np.ndarray:
    """Per lesion kind, one row of ``k`` crops per source; with ``outline``, the same rows again with the masks."""
    rows = []
    for lesion in LESIONS:
        rows += [[_crop_cell(c, cell, False) for c in crops[lesion]] for _, crops in sources]
        if outline:
            rows += [[_crop_cell(c, cell, True) for c in crops[lesion]] for _, crops in sources]
    return grid(rows, k, cell, caption)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:  # pragma: no cover
        raise RuntimeError(f"{path}: OpenCV could not encode the PNG")
    _atomic_write(path, buf.tobytes())


# --- the command ---------------------------------------------------------------------------------------------------


def write_comparison(
    out: Path,
    n: int = 6,
    size: int = 1024,
    seed: int = 0,
    generators: tuple[str, ...] = GENERATORS,
    tile: int = TILE,
    crop: int = CROP,
    outline: bool = True,
    command: str = "",
) -> Comparison:
    """Write ``photographs.png``, ``lesions.png`` and ``README.md`` into ``out``: real photographs beside ours.

    ``photographs.png``: every real photograph found (``n`` a row), field of view cropped square by the product's
    preprocessing, at ``tile`` px; then per generator one row of ``n`` synthetic photographs made at ``size`` px,
    grades spread over 0-4, camera styles in turn. ``lesions.png`` (only with the IDRiD photographs): per lesion
    kind a row of ``n`` crops of ``crop`` original pixels around typical lesion components of the IDRiD originals,
    enlarged x``ZOOM``, and per generator a row of crops of the same share of the field-of-view diameter from the
    synthetic photographs (more of grade 2-4 are drawn when a kind has too few components); with ``outline``
    the rows again with each mask outlined.

    Raises:
        ValueError: No real photograph on this machine (or none usable), an unknown generator, a bad size or n.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    size = _check_size(size)
    unknown = [g for g in generators if g not in GENERATORS]
    if unknown or not generators:
        raise ValueError(f"unknown generator {', '.join(unknown) or '(none)'}; choose from {', '.join(GENERATORS)}")
    found, missing = real_photographs()
    if not found:
        raise ValueError("no real photograph on this machine, nothing to compare with: " + "; ".join(missing))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Before any real pixel lands here: git must not pick the folder up, wherever it is.
    (out / ".gitignore").write_text("# real photographs: never commit this folder\n*\n", encoding="utf-8")

    used, left_out, real_row = [], [], []
    for name, path in found:
        try:
            image = preprocess.load_rgb(path)
            try:
                real_row.append(_tile(image, str(path), tile, name))
            except preprocess.NotFundusError as exc:
                # Still a real photograph (a close-up, a dark or clipped one): shown whole, padded square.
                real_row.append(_tile(image, str(path), tile, f"{name} (whole)", check_fundus=False))
                left_out.append(f"{name}: shown whole, no field of view found ({exc})")
            used.append((name, path))
        except ValueError as exc:  # unreadable
            left_out.append(f"{name}: {exc}")
    if not real_row:
        raise ValueError("no usable real photograph: " + "; ".join(left_out))

    idrid = real_samples.idrid_train4_dir()
    real_crops, share = real_lesion_crops(idrid, n, crop, seed) if idrid is not None else (None, 0.0)
    rows = [real_row[i : i + n] for i in range(0, len(real_row), n)]
    lesion_sources = [("real", real_crops)] if real_crops is not None else []
    for gen in generators:
        photos = [
            generate_fundus(g, size=size, seed=seed, style=st, index=i, generator=gen)
            for i, (g, st) in enumerate(synthetic_plan(n))
        ]
        rows.append([_tile(f.image, f.name, tile, f"{gen} grade {f.grade} {f.style}") for f in photos])
        if real_crops is None:
            continue
        # Grades 0-1 have few lesion kinds: draw more photographs of grades 2-4 until each kind has enough.
        extra = 0
        while extra < 6 and any(sum(len(components(f.masks[li])) for f in photos) < n for li in range(len(LESIONS))):
            photos.append(generate_fundus(2 + extra % 3, size=size, seed=seed, index=n + extra, generator=gen))
            extra += 1
        lesion_sources.append((gen, synthetic_lesion_crops(photos, gen, n, share, seed)))

    photographs = out / "photographs.png"
    caption = f"real photographs (top), then ours: {', '.join(generators)} at {size} px, seed {seed}"
    _write_png(photographs, grid(rows, n, tile, caption))
    lesions = None
    if real_crops is not None:
        lesions = out / "lesions.png"
        caption = (
            f"IDRiD originals: {crop} px crops at full resolution ({100 * share:.1f}% of the FOV diameter), x{ZOOM}; "
            f"ours: the same share of the FOV at {size} px"
        )
        _write_png(lesions, lesion_sheet(lesion_sources, n, crop * ZOOM, outline, caption))
    readme = out / "README.md"
    readme.write_text(_readme(used, missing, left_out, lesions is not None, command), encoding="utf-8")
    return Comparison(photographs, lesions, readme, used, missing, left_out)


WARNING = (
    "This folder holds copies and crops of REAL fundus photographs. Never commit it or publish it; "
    "each photograph's licence is listed below."
)


def _readme(
    used: list[tuple[str, Path]], missing: list[str], left_out: list[str], has_lesions: bool, command: str
) -> str:
    lines = [
        "# Real photographs beside ours (`drgnet synth-compare`)",
        "",
        f"**WARNING: {WARNING}** (The `.gitignore` of `*` here keeps git from adding it.)",
        "",
        f"Written {_dt.datetime.now().isoformat(timespec='seconds')}" + (f" by `{command}`." if command else "."),
        "",
        "- `photographs.png`: the real photographs (field of view cropped square by the product's preprocessing), "
        "then one row per generator of ours (grades spread over 0-4, camera styles in turn).",
    ]
    if has_lesions:
        lines.append(
            "- `lesions.png`: per lesion kind (MA, HE, EX, SE) crops of the IDRiD originals at full resolution "
            "(original pixels, enlarged by a whole nearest-neighbour factor) beside crops of ours of the same share "
            "of the field-of-view diameter; then the same rows with each lesion mask outlined."
        )
    lines += ["", "## Real photographs used", ""]
    lines += [f"- `{name}` ({path}): {real_samples.credit(name, path)}" for name, path in used]
    if missing:
        lines += ["", "## Missing sources", ""] + [f"- {m}" for m in missing]
    if left_out:
        lines += ["", "## Left out or shown whole", ""] + [f"- {m}" for m in left_out]
    return "\n".join(lines) + "\n"
