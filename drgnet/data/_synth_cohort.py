"""Synthetic cohorts on disk in the IDRiD layout (see ``drgnet.data.synthetic``), written by worker processes."""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from drgnet.data._synth_camera import STYLES, resolve_style
from drgnet.data._synth_fundus import (
    _STREAM_COHORT,
    GENERATORS,
    IMAGE_PREFIX,
    _check_size,
    _rng,
    generate_fundus,
    image_name,
    revision_of,
)
from drgnet.labels import LESIONS, check_grade

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
_MANIFEST_VERSION = 1

#: Default mix of grades in a cohort: more healthy eyes, as in screening, but every grade well represented.
DEFAULT_GRADE_WEIGHTS = (0.3, 0.2, 0.2, 0.15, 0.15)


def mask_path(out: Path, name: str, lesion: str) -> Path:
    """Where a cohort keeps the mask of ``lesion`` for the image ``name``."""
    return Path(out) / MASK_ROOT / LESION_DIRS[lesion] / f"{name}_{lesion}.png"


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


def _run_jobs(jobs: list[tuple], workers: int | None, progress: bool, desc: str) -> dict[int, tuple[int, str]]:
    """Run the cohort jobs here or in spawned worker processes; ``{index: (grade, findings)}``."""
    from tqdm.auto import tqdm

    n = len(jobs)
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    workers = max(1, min(workers, n)) if n else 1
    rows: dict[int, tuple[int, str]] = {}
    with tqdm(total=n, disable=not progress, desc=desc, unit="img") as bar:
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
    return rows


def _grades_table(rows: dict[int, tuple[int, str]], style: str, seed: int) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(GRADES_CSV_HEADER)
    for i in range(len(rows)):
        g, fnd = rows[i]
        writer.writerow([image_name(i), g, style, seed, fnd])
    return buf.getvalue().encode()


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
    rows = _run_jobs(jobs, workers, progress, f"synth {cam.name}")
    grades_csv = out / GRADES_CSV
    _atomic_write(grades_csv, _grades_table(rows, cam.name, int(seed)))
    manifest = {
        "generator": GENERATOR,
        "version": _MANIFEST_VERSION,
        "n": n,
        "size": size,
        "style": cam.name,
        "seed": int(seed),
        "generator_revision": revision_of(generator),
    }
    if generator != "v2":
        manifest["generator_version"] = generator
    _atomic_write(out / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return CohortInfo(n=n, out=out, grades_csv=grades_csv, seconds=time.perf_counter() - t0)
