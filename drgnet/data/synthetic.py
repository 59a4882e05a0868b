"""Synthetic colour fundus photographs with ICDR grades and pixel-exact lesion masks.

No real diabetic retinopathy data can be downloaded where this project is built and tested, so this module is
its stand-in: it paints a plausible retina (field of view, vignetting, choroidal texture, optic disc and cup,
macula, a branching artery / vein tree), adds the lesions an ICDR grade implies, and photographs it through a
named camera style. The same ``(seed, index)`` always gives the same eye and lesions; the style changes only
the camera, so one eye can be seen through several "clinics".

Cohorts are written in the IDRiD layout that ``drgnet.data.readers`` reads::

    OUT/1. Original Images/SYN_00000.jpg
    OUT/2. All Segmentation Groundtruths/1. Microaneurysms/SYN_00000_MA.png   (0/255, one channel)
    OUT/2. All Segmentation Groundtruths/2. Haemorrhages/SYN_00000_HE.png
    OUT/2. All Segmentation Groundtruths/3. Hard Exudates/SYN_00000_EX.png
    OUT/2. All Segmentation Groundtruths/4. Soft Exudates/SYN_00000_SE.png
    OUT/grades.csv      Image name,Retinopathy grade,style,seed,findings
    OUT/manifest.json
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import multiprocessing
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from drgnet.data._synth_anatomy import Eye, Raster, illumination, plan_eye, render_background
from drgnet.data._synth_camera import STYLES, CameraStyle, photograph, plan_capture, resolve_style
from drgnet.data._synth_lesions import render_lesions, render_scars
from drgnet.data._synth_pathology import FINDINGS, Pathology, plan_pathology
from drgnet.data._synth_vessels import grow_tree, render_vessels
from drgnet.data.sample import Sample
from drgnet.labels import GRADE_NAMES, LESION_COLOURS, LESIONS, NUM_LESIONS, check_grade

__all__ = [
    "DEFAULT_GRADE_WEIGHTS",
    "FINDINGS",
    "GENERATOR",
    "GENERATORS",
    "GRADES_CSV",
    "GRADES_CSV_HEADER",
    "IMAGE_DIR",
    "IMAGE_PREFIX",
    "LESION_DIRS",
    "MANIFEST",
    "MASK_ROOT",
    "STYLES",
    "CameraStyle",
    "CohortInfo",
    "SyntheticFundus",
    "generate_cohort",
    "generate_fundus",
    "image_name",
    "mask_path",
    "write_preview",
]

#: Folder of the photographs inside a cohort.
IMAGE_DIR = "1. Original Images"
#: Folder holding one sub-folder of masks per lesion.
MASK_ROOT = "2. All Segmentation Groundtruths"
#: Mask sub-folder of each lesion, as in IDRiD.
LESION_DIRS: dict[str, str] = {
    "MA": "1. Microaneurysms",
    "HE": "2. Haemorrhages",
    "EX": "3. Hard Exudates",
    "SE": "4. Soft Exudates",
}
GRADES_CSV = "grades.csv"
GRADES_CSV_HEADER = ("Image name", "Retinopathy grade", "style", "seed", "findings")
MANIFEST = "manifest.json"
GENERATOR = "drgnet.synthetic"
#: Generator versions: v2 is calibrated lesion by lesion to real photographs, v1 is the frozen original.
GENERATORS = ("v2", "v1")
IMAGE_PREFIX = "SYN_"
_MANIFEST_VERSION = 1
_MIN_SIZE = 32

#: Default mix of grades in a cohort: more healthy eyes, as in screening, but every grade well represented.
DEFAULT_GRADE_WEIGHTS = (0.3, 0.2, 0.2, 0.15, 0.15)

# Independent random streams per image, so that e.g. a different camera cannot move a lesion.
_STREAM_EYE, _STREAM_LESIONS, _STREAM_CAMERA, _STREAM_COHORT = 1, 2, 3, 4


def image_name(index: int) -> str:
    """File stem of the ``index``-th synthetic photograph, e.g. ``SYN_00042``."""
    return f"{IMAGE_PREFIX}{index:05d}"


def mask_path(out: Path, name: str, lesion: str) -> Path:
    """Where a cohort keeps the mask of ``lesion`` for the image ``name``."""
    return Path(out) / MASK_ROOT / LESION_DIRS[lesion] / f"{name}_{lesion}.png"


@dataclass
class SyntheticFundus:
    """One synthetic photograph and everything known about it.

    Attributes:
        image: RGB photograph after the camera style, JPEG round trip included, ``(H, W, 3)`` uint8.
        masks: Lesion masks in ``LESIONS`` order, ``(4, H, W)`` uint8 in {0, 1}.
        fov: Field of view, ``(H, W)`` bool.
        grade: ICDR grade 0-4.
        findings: What was drawn, e.g. ``("microaneurysms", "venous_beading", "nvd")``.
        style: Camera style name.
        seed: Cohort seed.
        index: Image number within the cohort.
        eye: ``"right"`` or ``"left"`` (the disc is on the image's right for a right eye).
        jpeg: The encoded photograph, exactly the bytes a cohort writes.
    """

    image: np.ndarray
    masks: np.ndarray
    fov: np.ndarray
    grade: int
    findings: tuple[str, ...]
    style: str
    seed: int
    index: int
    eye: str
    jpeg: bytes

    @property
    def name(self) -> str:
        return image_name(self.index)

    def to_sample(self) -> Sample:
        """The photograph as the record every dataset reader yields."""
        return Sample(
            image=self.image,
            name=self.name,
            source=f"synthetic:{self.style}",
            grade=self.grade,
            masks=self.masks,
            lesion_known=(True,) * NUM_LESIONS,
            ignore=~self.fov,
            meta={"findings": ";".join(self.findings), "seed": self.seed, "eye": self.eye},
        )


def _rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) % (1 << 64), int(index), stream]))


def _check_size(size: int) -> int:
    s = int(size)
    if s < _MIN_SIZE:
        raise ValueError(f"size {size!r} is too small for a fundus photograph (at least {_MIN_SIZE} px)")
    return s


def _plan(grade: int, seed: int, index: int) -> tuple[Eye, Pathology]:
    rng_eye = _rng(seed, index, _STREAM_EYE)
    eye = plan_eye(rng_eye)
    eye.vessels = grow_tree(rng_eye, eye)
    return eye, plan_pathology(grade, eye, _rng(seed, index, _STREAM_LESIONS))


def _render_retina(
    eye: Eye, path: Pathology, raster: Raster, draw_lesions: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Light leaving the retina, ``(S, S, 3)`` float32, and the lesion alphas ``(4, S, S)``, on one canvas."""
    background = render_background(eye, raster)
    alb = background.copy()
    render_scars(alb, path.scars, raster)
    render_vessels(alb, background, eye, raster, path.vessels, path.new_vessels)
    if draw_lesions:
        alphas = render_lesions(alb, background, path.lesions, raster)
    else:
        alphas = np.zeros((NUM_LESIONS, raster.size, raster.size), np.float32)
    light = alb * illumination(raster)[..., None]
    if eye.right:
        # Everything was drawn as a left eye (disc on the left); a right eye is its mirror image.
        light = light[:, ::-1]
        alphas = alphas[:, :, ::-1]
    return np.ascontiguousarray(light), np.ascontiguousarray(alphas)


def generate_fundus(
    grade: int,
    size: int = 512,
    seed: int = 0,
    style: str | CameraStyle = "default",
    index: int = 0,
    *,
    draw_lesions: bool = True,
    generator: str = "v2",
) -> SyntheticFundus:
    """Paint one fundus photograph of ICDR ``grade``.

    Args:
        grade: ICDR grade 0-4; it decides which lesions are drawn and how many.
        size: Side length of the square photograph in pixels.
        seed: Cohort seed. With ``index`` it fixes the eye, its lesions and the camera's random state.
        style: Camera style name (see ``STYLES``) or a ``CameraStyle``.
        index: Image number within the cohort.
        draw_lesions: False paints the same eye through the same camera without the four masked lesion
            types (new vessels, IRMA, beading and laser scars stay); its masks are empty. Useful to see
            exactly what the lesions changed.
        generator: ``"v2"`` (calibrated to real photographs) or ``"v1"`` (the frozen generator from before the
            calibration, for comparisons such as ``drgnet bench realism``).

    Returns:
        The photograph, its masks, field of view and what was drawn.

    Raises:
        ValueError: On a grade outside 0-4, an unknown style or generator, or a size below 32 px.
    """
    grade = check_grade(grade)
    size = _check_size(size)
    cam = resolve_style(style)
    if int(index) < 0:
        raise ValueError(f"index {index!r} must be >= 0")
    if generator not in GENERATORS:
        raise ValueError(f"unknown generator {generator!r}; choose one of {', '.join(GENERATORS)}")
    if generator == "v1":
        return _generate_v1(grade, size, seed, cam, int(index), draw_lesions)
    eye, path = _plan(grade, seed, index)
    cap = plan_capture(cam, size, _rng(seed, index, _STREAM_CAMERA))
    retina, alphas = _render_retina(eye, path, Raster(cap.render_size, cap.radius), draw_lesions)
    image, jpeg, masks, fov = photograph(retina, alphas, cap, cam, size)
    return SyntheticFundus(
        image=image,
        masks=masks,
        fov=fov,
        grade=grade,
        findings=path.findings,
        style=cam.name,
        seed=int(seed),
        index=int(index),
        eye="right" if eye.right else "left",
        jpeg=jpeg,
    )


#: Where the frozen v1 generator lives: outside the package (a near-copy of this one, not shipped in the wheel).
V1_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "synth_v1"
_V1_MODULE = "drgnet_benchmarks_synth_v1"


def _load_v1():
    """Import the frozen v1 generator from ``benchmarks/synth_v1`` of the source checkout (once per process)."""
    if _V1_MODULE in sys.modules:
        return sys.modules[_V1_MODULE]
    init = V1_DIR / "__init__.py"
    if not init.is_file():
        raise ValueError(
            f"generator v1 is not available: {init} is missing (it ships only with a source checkout, "
            "in benchmarks/synth_v1); use generator v2"
        )
    spec = importlib.util.spec_from_file_location(_V1_MODULE, init, submodule_search_locations=[str(V1_DIR)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[_V1_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_V1_MODULE]
        raise
    return module


def _generate_v1(grade: int, size: int, seed: int, cam: CameraStyle, index: int, draw: bool) -> SyntheticFundus:
    _synth_v1 = _load_v1()
    if cam.name not in _synth_v1.STYLES:
        raise ValueError(f"generator v1 knows only the styles {', '.join(_synth_v1.STYLES)}, not {cam.name!r}")
    image, jpeg, masks, fov, findings, right = _synth_v1.render(
        grade,
        size,
        cam.name,
        _rng(seed, index, _STREAM_EYE),
        _rng(seed, index, _STREAM_LESIONS),
        _rng(seed, index, _STREAM_CAMERA),
        draw,
    )
    return SyntheticFundus(
        image=image,
        masks=masks,
        fov=fov,
        grade=grade,
        findings=findings,
        style=cam.name,
        seed=int(seed),
        index=index,
        eye="right" if right else "left",
        jpeg=jpeg,
    )


# --------------------------------------------------------------------------------------------- cohorts


@dataclass(frozen=True)
class CohortInfo:
    """What ``generate_cohort`` wrote."""

    n: int
    out: Path
    grades_csv: Path
    seconds: float


def _atomic_write(path: Path, data: bytes) -> None:
    # Write beside the target and rename, so an interrupted run never leaves a half-written file under the
    # real name (a dot-name with .tmp is ignored by readers that glob *.jpg / *.png).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _png(mask: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", mask.astype(np.uint8) * 255, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover
        raise RuntimeError("OpenCV could not encode a PNG")
    return buf.tobytes()


def _cohort_job(job: tuple[str, int, int, int, str, int, str]) -> tuple[int, int, str]:
    out_s, index, grade, size, style, seed, generator = job
    out = Path(out_s)
    f = generate_fundus(grade, size=size, seed=seed, style=style, index=index, generator=generator)
    name = f.name
    # Masks first: an image on disk then always has its masks.
    for k, lesion in enumerate(LESIONS):
        _atomic_write(mask_path(out, name, lesion), _png(f.masks[k]))
    _atomic_write(out / IMAGE_DIR / f"{name}.jpg", f.jpeg)
    return index, grade, ";".join(f.findings)


def _init_worker() -> None:
    # One process per core already; OpenCV's own threads would only fight over the same cores.
    cv2.setNumThreads(1)


def _cohort_grades(n: int, seed: int, grades, grade_weights) -> list[int]:
    if grades is not None:
        gs = [check_grade(g) for g in grades]
        if len(gs) != n:
            raise ValueError(f"grades has {len(gs)} entries but n is {n}; give one grade per image")
        return gs
    w = np.asarray(DEFAULT_GRADE_WEIGHTS if grade_weights is None else grade_weights, dtype=float)
    if w.shape != (5,) or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(f"grade_weights must be five non-negative numbers (grades 0-4), got {grade_weights!r}")
    rng = _rng(seed, 0, _STREAM_COHORT)
    return [int(g) for g in rng.choice(5, size=n, p=w / w.sum())]


def _remove_leftovers(out: Path, n: int) -> None:
    """Drop temp files of an interrupted run and images of an earlier, larger cohort in the same folder."""
    pattern = re.compile(rf"^{IMAGE_PREFIX}(\d+)(?:_(?:MA|HE|EX|SE))?\.(?:jpg|png)$")
    folders = [out / IMAGE_DIR] + [out / MASK_ROOT / d for d in LESION_DIRS.values()]
    for folder in folders:
        for p in folder.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
                continue
            m = pattern.match(p.name)
            if m and int(m.group(1)) >= n:
                p.unlink(missing_ok=True)


def generate_cohort(
    out: Path,
    n: int,
    size: int = 512,
    style: str = "default",
    seed: int = 0,
    grades: Sequence[int] | None = None,
    grade_weights: Sequence[float] | None = None,
    workers: int | None = None,
    progress: bool = True,
    generator: str = "v2",
) -> CohortInfo:
    """Write ``n`` synthetic photographs with masks and grades into ``out`` (IDRiD layout, see module doc).

    Image ``i`` is ``generate_fundus(grades[i], size, seed, style, index=i)``, so the cohort is the same
    whatever the number of workers, and a cohort of another style with the same seed shows the same eyes.
    Workers are spawned processes (safe next to threaded libraries such as torch), so a script that calls
    this with several workers needs the usual ``if __name__ == "__main__":`` guard.

    Args:
        out: Folder to write into; created if missing. Images of an earlier cohort with higher numbers are
            removed so ``grades.csv`` and the folders agree.
        n: Number of photographs.
        size: Side length in pixels.
        style: Camera style name.
        seed: Cohort seed.
        grades: One grade per image; by default grades are drawn from ``grade_weights`` with ``seed``.
        grade_weights: Relative frequency of grades 0-4 (default ``DEFAULT_GRADE_WEIGHTS``).
        workers: Processes; None means one per CPU core, 1 runs in this process.
        progress: Show a progress bar.
        generator: ``"v2"`` (calibrated) or ``"v1"`` (the frozen original), see ``generate_fundus``.

    Returns:
        Counts, paths and the time taken.
    """
    t0 = time.perf_counter()
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    size = _check_size(size)
    cam = resolve_style(style)
    if cam.name not in STYLES or STYLES[cam.name] != cam:
        raise ValueError(f"generate_cohort needs a registered style name; {cam.name!r} is not in STYLES")
    if generator not in GENERATORS:
        raise ValueError(f"unknown generator {generator!r}; choose one of {', '.join(GENERATORS)}")
    gs = _cohort_grades(n, seed, grades, grade_weights)
    out = Path(out)
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    for d in LESION_DIRS.values():
        (out / MASK_ROOT / d).mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out, n)

    jobs = [(str(out), i, gs[i], size, cam.name, int(seed), generator) for i in range(n)]
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    workers = max(1, min(workers, n)) if n else 1
    from tqdm.auto import tqdm

    rows: dict[int, tuple[int, str]] = {}
    with tqdm(total=n, disable=not progress, desc=f"synth {cam.name}", unit="img") as bar:
        if workers == 1:
            for i, g, fnd in map(_cohort_job, jobs):
                rows[i] = (g, fnd)
                bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")
            chunk = max(1, min(8, n // (workers * 8)))
            with ctx.Pool(workers, initializer=_init_worker) as pool:
                for i, g, fnd in pool.imap_unordered(_cohort_job, jobs, chunksize=chunk):
                    rows[i] = (g, fnd)
                    bar.update(1)

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(GRADES_CSV_HEADER)
    for i in range(n):
        g, fnd = rows[i]
        writer.writerow([image_name(i), g, cam.name, int(seed), fnd])
    grades_csv = out / GRADES_CSV
    _atomic_write(grades_csv, buf.getvalue().encode())
    manifest = {
        "generator": GENERATOR,
        "version": _MANIFEST_VERSION,
        "n": n,
        "size": size,
        "style": cam.name,
        "seed": int(seed),
    }
    if generator != "v2":
        manifest["generator_version"] = generator
    _atomic_write(out / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return CohortInfo(n=n, out=out, grades_csv=grades_csv, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------- preview


def _label(img: np.ndarray, text: str, scale: float) -> None:
    org = (int(8 * scale), int(22 * scale))
    font = cv2.FONT_HERSHEY_SIMPLEX
    fs = 0.55 * scale
    th = max(1, int(round(1.5 * scale)))
    cv2.putText(img, text, org, font, fs, (0, 0, 0), th + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, font, fs, (255, 255, 255), th, cv2.LINE_AA)


def overlay_masks(image: np.ndarray, masks: np.ndarray, opacity: float = 0.75) -> np.ndarray:
    """The photograph with each lesion mask painted in its ``LESION_COLOURS`` colour."""
    out = image.astype(np.float32)
    for k, lesion in enumerate(LESIONS):
        m = masks[k].astype(bool)
        if m.any():
            out[m] = out[m] * (1 - opacity) + np.asarray(LESION_COLOURS[lesion], np.float32) * opacity
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def write_preview(path: Path, size: int = 384, style: str = "default", seed: int = 0) -> Path:
    """Write a contact sheet PNG: one photograph per grade, their lesion masks, and one eye under every other
    camera style.

    Row 1 shows grades 0-4 (image ``index`` = grade) in ``style``; row 2 the same photographs with the lesion
    masks painted in ``LESION_COLOURS``; the rows below show the grade-3 eye through each other camera style.

    Returns:
        ``path``.
    """
    size = _check_size(size)
    cam = resolve_style(style)
    scale = size / 384.0
    cells: list[list[np.ndarray]] = [[], []]
    for g in range(5):
        f = generate_fundus(g, size=size, seed=seed, style=cam, index=g)
        top = f.image.copy()
        _label(top, f"{g}: {GRADE_NAMES[g]}", scale)
        cells[0].append(top)
        ov = overlay_masks(f.image, f.masks)
        present = " ".join(les for k, les in enumerate(LESIONS) if f.masks[k].any())
        _label(ov, f"masks: {present or 'none'}", scale)
        cells[1].append(ov)
    others = [s for s in STYLES if s != cam.name]
    row: list[np.ndarray] = []
    for name in others:
        f = generate_fundus(3, size=size, seed=seed, style=name, index=3)
        im = f.image.copy()
        _label(im, f"grade 3 / {name}", scale)
        row.append(im)
        if len(row) == 5:
            cells.append(row)
            row = []
    if row:
        cells.append(row)
    blank = np.zeros((size, size, 3), np.uint8)
    gap = max(2, int(4 * scale))
    lines = []
    for r in cells:
        r = r + [blank] * (5 - len(r))
        parts = []
        for c in r:
            parts += [c, np.full((size, gap, 3), 40, np.uint8)]
        lines.append(np.concatenate(parts[:-1], axis=1))
        lines.append(np.full((gap, lines[-1].shape[1], 3), 40, np.uint8))
    # Legend strip for the mask colours.
    legend = np.full((int(30 * scale), lines[0].shape[1], 3), 40, np.uint8)
    x = int(8 * scale)
    for lesion in LESIONS:
        cv2.rectangle(legend, (x, int(8 * scale)), (x + int(16 * scale), int(24 * scale)), LESION_COLOURS[lesion], -1)
        cv2.putText(
            legend,
            lesion,
            (x + int(20 * scale), int(22 * scale)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5 * scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        x += int(70 * scale)
    cv2.putText(
        legend,
        f"drgnet synthetic fundus  style={cam.name}  seed={seed}",
        (x + int(20 * scale), int(22 * scale)),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5 * scale,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    sheet = np.concatenate([legend] + lines[:-1], axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", sheet[..., ::-1])
    if not ok:  # pragma: no cover
        raise RuntimeError("OpenCV could not encode the preview PNG")
    _atomic_write(path, buf.tobytes())
    return path
