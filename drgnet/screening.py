"""Batch screening: thousands of photographs in, one row per photograph out (CSV or JSONL).

Each row holds the file's sha256, the ICDR grade with its five probabilities, the referable flag, an uncertainty
(normalised entropy), per-lesion area and count, and a gradability verdict with its reasons
(``drgnet.data.quality``). A photograph that cannot be scored (not an image, truncated, not a fundus photograph)
becomes a row with ``status=error`` and the reason; it never stops the run.

The output is written row by row with a flush, so a run that is killed leaves a valid file behind. Running
again with the same ``--out`` resumes: a cut-off last line is dropped, and photographs whose sha256 is already
in the file are skipped (a photograph that was renamed is not screened twice; one that was replaced is).
Rows without a sha256 (the file could not be read at all) are retried.

Local runs load and preprocess in DataLoader worker processes and run batches through an engine (PyTorch in
channels-last memory format, or ONNX Runtime; ``drgnet.engines``). ``screen_ray`` runs the same per-batch code
in a pool of model actors on Ray Data, for a cluster.

With a sink (``drgnet screen --db``; ``ScreenSink``, found by name among the ``drgnet.screen_sinks`` entry
points) every scored photograph is also stored with its prediction and maps, so it enters the review worklist;
a photograph is stored before its row is written, so resuming never leaves one out.

Usage::

    drgnet screen photos/ more/*.jpg list.csv --checkpoint runs/train/best --out results.csv --masks masks/
    drgnet screen photos/ --out results.csv --db          # the active model version; results into the worklist
"""

from __future__ import annotations

import collections
import csv
import glob
import hashlib
import io
import json
import math
import multiprocessing
import multiprocessing.context
import os
import stat
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from drgnet.data.preprocess import NotFundusError, Preprocessed, load_rgb, preprocess
from drgnet.data.quality import NO_FIELD_OF_VIEW, ImageQuality, QualityThresholds, assess_quality
from drgnet.labels import GRADE_NAMES, LESIONS, NUM_GRADES, REFERABLE_MIN_GRADE
from drgnet.tiling import lesion_side, lesion_view

#: Files a folder search picks up (explicit paths and CSV lists take any file).
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm", ".jp2", ".dcm", ".dicom"}
)

#: Largest file read as one photograph (200 MB: several times a raw 80-megapixel TIFF); ``--max-file-mb``.
MAX_FILE_BYTES = 200 * 1024 * 1024

#: Output columns, in order. CSV and JSONL rows carry the same keys; missing values are empty / null.
COLUMNS: tuple[str, ...] = (
    "path",
    "sha256",
    "status",  # "ok" or "error"
    "error",
    "grade",
    "grade_name",
    *(f"p_grade_{g}" for g in range(NUM_GRADES)),
    "referable",
    "referable_probability",
    "uncertainty",
    "gradable",
    "quality_reasons",
    "fov_found",
    "brightness",
    "clipped_dark",
    "clipped_bright",
    "sharpness",
    "fov_diameter",
    *(f"{lesion}_{key}" for lesion in LESIONS for key in ("area_fraction", "count")),
    "model_version",
    "engine",
    "overlay",
)

_PROB_DIGITS = 6


# ----------------------------------------------------------------------------------------------- inputs


def collect_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Expand folders, glob patterns, image files and CSV lists into one ordered list of paths.

    - A folder: every file with an image suffix (``IMAGE_SUFFIXES``) below it, recursively, sorted.
    - A pattern with ``*``, ``?`` or ``[``: the files it matches (``**`` recurses), sorted.
    - A ``.csv`` file: the column ``path``, else the first column; relative paths are taken relative to the
      CSV's folder. Listed files that do not exist become error rows later (a missing file is a finding).
    - Anything else: the file itself, whatever its suffix.

    Only regular files are read later: a listed folder, FIFO, device or socket becomes an error row saying so
    (``read_photo_file``), so nothing can make a run hang or read forever.

    Duplicates keep their first position.

    Raises:
        ValueError: An input is neither an existing file or folder nor a pattern that matches something.
    """
    out: list[str] = []
    for raw in inputs:
        item = str(raw)
        p = Path(item)
        if p.is_dir():
            out += sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file() and p.suffix.lower() == ".csv":
            out += _paths_from_csv(p)
        elif p.is_file():
            out.append(item)
        elif p.exists() and not any(c in item for c in "*?["):
            out.append(item)  # a FIFO, a device, a socket: reported as an error row, never read
        elif any(c in item for c in "*?["):
            matches = sorted(m for m in glob.glob(item, recursive=True) if Path(m).is_file())
            if not matches:
                raise ValueError(f"{item}: the pattern matches no file")
            out += matches
        else:
            raise ValueError(f"{item}: no such file or folder")
    return list(dict.fromkeys(out))


def _paths_from_csv(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    if "path" in header:
        col, body = header.index("path"), rows[1:]
    else:
        # No `path` column: the first column; its first cell is a header unless it names an existing file.
        col = 0
        first = rows[0][0].strip() if rows[0] else ""
        body = rows if first and (path.parent / first).is_file() else rows[1:]
    out = []
    for row in body:
        if len(row) <= col or not row[col].strip():
            continue
        p = Path(row[col].strip())
        out.append(str(p if p.is_absolute() else path.parent / p))
    return out


# ------------------------------------------------------------------------------------- loading (workers)


@dataclass
class ScreenItem:
    """One photograph after loading, hashing, preprocessing and the quality check (or what went wrong)."""

    path: str
    sha256: str = ""
    error: str = ""
    skipped: bool = False  # its sha256 is already in the output
    quality: ImageQuality | None = None
    image: np.ndarray | None = field(default=None, repr=False)  # (S, S, 3) uint8 model input
    fov_mask: np.ndarray | None = field(default=None, repr=False)  # (S, S) bool
    pre: Preprocessed | None = field(default=None, repr=False)  # only when kept (masks or a sink)
    original: np.ndarray | None = field(default=None, repr=False)  # only when kept
    lesion: Preprocessed | None = field(default=None, repr=False)  # lesion view (drgnet.tiling), None: global view
    data: bytes | None = field(default=None, repr=False)  # the file's bytes, only when kept

    @property
    def ready(self) -> bool:
        return self.image is not None


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_photo_file(path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; anything else is refused before a byte is read.

    The file is opened without blocking (a FIFO with no writer would otherwise hang the open) and checked through
    its open descriptor, so it cannot be swapped for something else between the check and the read.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file and why it is not read (not a regular file, too big).
        OSError: the file cannot be read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _FILE_KINDS if test(info.st_mode)), "not a regular file")
            raise ValueError(f"{path}: {kind}, not a photograph file; skipped")
        if info.st_size > max_bytes:
            raise ValueError(
                f"{path}: {info.st_size / 2**20:.0f} MB, over the limit of {max_bytes / 2**20:.0f} MB for one "
                "photograph (--max-file-mb); skipped"
            )
        chunks, total = [], 0
        while total <= max_bytes:  # a file that grows meanwhile still stops at the limit
            chunk = os.read(fd, min(1 << 22, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ValueError(f"{path}: grew past the limit of {max_bytes / 2**20:.0f} MB while being read; skipped")
    return data


def prepare_item(
    path: str,
    size: int,
    skip: frozenset[str] | set[str] = frozenset(),
    keep_original: bool = False,
    thresholds: QualityThresholds | None = None,
    max_bytes: int = MAX_FILE_BYTES,
    lesion_fov_px: int = 0,
) -> ScreenItem:
    """Read, hash, decode, preprocess and quality-check one photograph. Never raises: failures are items.

    With ``lesion_fov_px`` the item also carries its lesion view (:func:`drgnet.tiling.lesion_view`).
    """
    try:
        data = read_photo_file(path, max_bytes)
    except FileNotFoundError:
        return ScreenItem(path, error=f"{path}: no such file")
    except ValueError as exc:
        return ScreenItem(path, error=_one_line(str(exc)))
    except OSError as exc:
        return ScreenItem(path, error=_one_line(f"{path}: cannot read the file ({exc.strerror or exc})"))
    sha = hashlib.sha256(data).hexdigest()
    if sha in skip:
        return ScreenItem(path, sha, skipped=True)
    try:
        buffer = io.BytesIO(data)
        buffer.name = path  # load_rgb names the file in its errors
        image = load_rgb(buffer)
        pre = preprocess(image, size, source=path)
        quality = assess_quality(image, pre.fov, thresholds)
        side = lesion_side(pre, lesion_fov_px) if lesion_fov_px else 0
        lesion = lesion_view(pre, image, side) if side else None
    except NotFundusError as exc:
        return ScreenItem(path, sha, error=_one_line(str(exc)), quality=NO_FIELD_OF_VIEW)
    except (ValueError, OSError, MemoryError) as exc:
        return ScreenItem(path, sha, error=_one_line(str(exc)))
    except Exception as exc:  # noqa: BLE001 - one odd file must never stop a screening run
        return ScreenItem(path, sha, error=_one_line(f"{path}: {type(exc).__name__}: {exc}"))
    return ScreenItem(
        path,
        sha,
        quality=quality,
        image=pre.image,
        fov_mask=pre.fov_mask,
        pre=pre if keep_original else None,
        original=image if keep_original else None,
        data=data if keep_original else None,
        lesion=lesion,
    )


class ScreeningDataset:
    """Paths as a map-style dataset of ``ScreenItem`` for a DataLoader (loading runs in its workers)."""

    def __init__(
        self,
        paths: Sequence[str],
        size: int,
        skip: Iterable[str] = (),
        keep_original: bool = False,
        thresholds: QualityThresholds | None = None,
        max_bytes: int = MAX_FILE_BYTES,
        lesion_fov_px: int = 0,
    ) -> None:
        self.paths = list(paths)
        self.lesion_fov_px = lesion_fov_px
        self.size = size
        self.skip = frozenset(skip)
        self.keep_original = keep_original
        self.thresholds = thresholds
        self.max_bytes = max_bytes

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> ScreenItem:
        return prepare_item(
            self.paths[i],
            self.size,
            self.skip,
            self.keep_original,
            self.thresholds,
            max_bytes=self.max_bytes,
            lesion_fov_px=self.lesion_fov_px,
        )


def _worker_init(_: int) -> None:
    import cv2

    cv2.setNumThreads(1)  # one photograph per worker process at a time; the processes are the parallelism


def _loader_context() -> multiprocessing.context.BaseContext:
    """Worker processes that do not inherit this process's thread pools.

    Forked workers inherit OpenCV's and OpenMP's pool state without its threads and can hang in their first
    parallel call (seen here after the parent had used OpenCV). A fork server starts clean, imports this module
    once, and forks each worker from that clean state, which is about as fast as a plain fork.
    """
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "drgnet.screening"])
    return ctx


def _as_list(batch: list[ScreenItem]) -> list[ScreenItem]:
    return batch


# ------------------------------------------------------------------------------------------ scoring


@dataclass(frozen=True)
class ScreenOptions:
    """What a screening run does besides grading."""

    threshold: float = 0.5  # lesion probability at which a pixel counts as lesion
    masks_dir: str | None = None  # write overlay and per-lesion mask PNGs here
    thresholds: QualityThresholds = field(default_factory=QualityThresholds)
    max_file_bytes: int = MAX_FILE_BYTES  # larger files are reported, never read
    draw_max_pixels: int | None = None  # masks and overlays drawn on a copy of at most this many pixels


def _nan_to_none(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def error_row(item: ScreenItem, engine: str, model_version: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    quality = item.quality or ImageQuality(gradable=False, reasons=(), fov_found=False)
    row.update(
        path=item.path,
        sha256=item.sha256 or None,
        status="error",
        error=item.error,
        model_version=model_version,
        engine=engine,
        gradable=False,
        quality_reasons=",".join(quality.reasons) or None,
        fov_found=quality.fov_found,
    )
    return row


class SinkError(RuntimeError):
    """A sink cannot go on (its database went away, its disk is full): the run stops with this message.

    Rows written before it are stored, so running the same command again resumes where it stopped.
    """


class ScreenSink(Protocol):
    """Where screened photographs go besides the output file (``drgnet screen --db``: the review worklist).

    Sinks are found by name in the ``drgnet.screen_sinks`` entry-point group (``load_sink``), so this package
    needs no import of the database layer. ``store`` is called once per scored photograph, before its row is
    written: a photograph whose row is in the output has been stored. A ``ValueError`` from ``store`` turns the
    row into an error row with that reason; a ``SinkError`` (or anything else) stops the run.
    """

    def store(
        self,
        item: ScreenItem,
        row: dict[str, Any],
        grade_probs: np.ndarray,
        lesion_probs: np.ndarray,
        attention: np.ndarray,
    ) -> None:
        """Keep one photograph: ``item`` holds its bytes and preprocessing; grade and attention come from the global
        view, the lesion maps from the lesion view when the model has one.

        Args:
            item: The prepared photograph (``data``, ``pre`` and ``original`` are set).
            row: Its output row (status ok).
            grade_probs: ``(5,)`` grade probabilities.
            lesion_probs: ``(4, L, L)`` lesion probabilities over the global view's square (``L = S``, or the
                side of the lesion view).
            attention: ``(S, S)`` high-level attention.
        """
        ...

    def close(self) -> None: ...


SINK_GROUP = "drgnet.screen_sinks"


def load_sink(name: str, **options: Any) -> ScreenSink:
    """Build the sink registered under ``name`` in the ``drgnet.screen_sinks`` entry points.

    Raises:
        ValueError: No such sink is installed, or the sink refused its options (e.g. an unreachable database).
    """
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group=SINK_GROUP)}
    if name not in found:
        have = ", ".join(sorted(found)) or "none"
        raise ValueError(f"no screening sink {name!r} is installed (installed: {have}); reinstall drgnet")
    return found[name].load()(**options)


def score_batch(
    items: Sequence[ScreenItem],
    engine: Any,
    options: ScreenOptions,
    sink: ScreenSink | None = None,
) -> list[dict[str, Any] | None]:
    """Rows for a batch of prepared items, in order (None for skipped items).

    The one place a batch becomes rows: local screening and every Ray actor call it. With a ``sink``, every
    scored photograph is handed to it (its items must have been prepared with ``keep_original``).
    """
    from drgnet.inference import (
        PhotoInput,
        engine_maps,
        normalised_entropy,
        prediction_at_full_resolution,
        referable_probability,
        summarise_lesions,
    )

    ready = [i for i, it in enumerate(items) if it.ready]
    maps = engine_maps(engine, [PhotoInput(items[i].image, items[i].lesion) for i in ready])
    position = {i: k for k, i in enumerate(ready)}
    rows: list[dict[str, Any] | None] = []
    for i, item in enumerate(items):
        if item.skipped:
            rows.append(None)
            continue
        if not item.ready:
            rows.append(error_row(item, engine.name, engine.model_version))
            continue
        m = maps[position[i]]
        probs = m.grade_probs.astype(np.float64)
        fov = item.lesion.fov_mask if item.lesion is not None else item.fov_mask
        lesions = summarise_lesions(m.lesion_probs * fov[None], fov, options.threshold)
        grade = int(probs.argmax())
        row: dict[str, Any] = dict.fromkeys(COLUMNS)
        row.update(
            path=item.path,
            sha256=item.sha256,
            status="ok",
            error=None,
            grade=grade,
            grade_name=GRADE_NAMES[grade],
            referable=grade >= REFERABLE_MIN_GRADE,
            referable_probability=round(referable_probability(probs), _PROB_DIGITS),
            uncertainty=round(normalised_entropy(probs), _PROB_DIGITS),
            model_version=engine.model_version,
            engine=engine.name,
        )
        for g in range(NUM_GRADES):
            row[f"p_grade_{g}"] = round(float(probs[g]), _PROB_DIGITS)
        row.update({key: _nan_to_none(v) for key, v in item.quality.to_dict().items()})
        for name, summary in lesions.items():
            row[f"{name}_area_fraction"] = round(summary.area_fraction, _PROB_DIGITS)
            row[f"{name}_count"] = summary.count
        if options.masks_dir is not None:
            if item.pre is None or item.original is None:
                raise ValueError(f"{item.path}: masks requested but the photograph was not kept (keep_original=False)")
            full = prediction_at_full_resolution(
                item.pre,
                probs,
                m.lesion_probs,
                m.attention,
                threshold=options.threshold,
                max_pixels=options.draw_max_pixels,
            )
            row["overlay"] = write_masks(item, full.lesion_probs, full.attention, options)
        if sink is not None:
            try:
                sink.store(item, row, m.grade_probs, m.lesion_probs, m.attention)
            except ValueError as exc:
                item.error = _one_line(f"not stored: {exc}")
                row = error_row(item, engine.name, engine.model_version)
        rows.append(row)
    return rows


def write_masks(item: ScreenItem, lesion_probs: np.ndarray, attention: np.ndarray, options: ScreenOptions) -> str:
    """Overlay and per-lesion 0/255 masks at the photograph's resolution (or at most ``options.draw_max_pixels``
    pixels: ``drgnet screen`` draws big photographs' derivatives on a downscaled copy); returns the overlay's path.

    Args:
        item: The photograph (``original`` kept).
        lesion_probs: ``(4, H, W)`` probabilities at the photograph's resolution.
        attention: ``(H, W)`` attention in [0, 1] at the photograph's resolution.

    Files are named ``<stem>_<sha256[:12]>_overlay.png`` and ``..._<MA|HE|EX|SE>.png`` so photographs with
    the same name in different folders do not overwrite each other.
    """
    import cv2

    from drgnet.inference import render_overlay

    out = Path(options.masks_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{Path(item.path).stem}_{item.sha256[:12]}"
    for k, name in enumerate(LESIONS):
        mask = ((lesion_probs[k] >= options.threshold) * 255).astype(np.uint8)
        _write_png(out / f"{stem}_{name}.png", mask)
    overlay = render_overlay(
        item.original,
        lesion_probs,
        attention,
        opacity=0.45,
        threshold=options.threshold,
        max_pixels=options.draw_max_pixels,
    )
    path = out / f"{stem}_overlay.png"
    _write_png(path, cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
    return str(path)


def _write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.tobytes())
    tmp.replace(path)


# ------------------------------------------------------------------------------------------- output


class ResultWriter:
    """Appends rows to a CSV or JSONL file, one flushed line per row, and knows what is already in it.

    Opening an existing file repairs it for appending: a last line without its newline (the run was killed
    while writing it) is cut off. ``done`` holds the sha256 of every complete row.

    Raises:
        ValueError: Unknown suffix, or the existing file is not a screening output of this version.
    """

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str] = COLUMNS) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix == ".csv":
            self.format = "csv"
        elif suffix in (".jsonl", ".ndjson"):
            self.format = "jsonl"
        else:
            raise ValueError(f"{self.path}: output must end in .csv or .jsonl")
        self.columns = tuple(columns)
        self.done: set[str] = set()
        self.existing_rows = 0
        self.dropped_partial_line = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._repair_and_read()
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._fh = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if new and self.format == "csv":
            self._emit(self._csv_line(list(self.columns)))

    def _repair_and_read(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)
            data = data[:cut]
            self.dropped_partial_line = True
        lines = data.decode("utf-8").splitlines()
        if not lines:
            return
        if self.format == "csv":
            header = next(csv.reader([lines[0]]))
            if tuple(header) != self.columns:
                raise ValueError(
                    f"{self.path}: its columns are not this version's screening columns; write to a new file"
                )
            body = lines[1:]
            for n, values in enumerate(csv.reader(body), start=2):
                if len(values) != len(self.columns):
                    raise ValueError(f"{self.path}:{n}: expected {len(self.columns)} fields, found {len(values)}")
                self._seen(dict(zip(self.columns, values, strict=True)))
        else:
            for n, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{self.path}:{n}: not a JSON line ({exc.msg})") from None
                self._seen(row)

    def _seen(self, row: dict[str, Any]) -> None:
        self.existing_rows += 1
        if row.get("sha256"):
            self.done.add(str(row["sha256"]))

    @staticmethod
    def _csv_line(values: list[Any]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(["" if v is None else v for v in values])
        return buffer.getvalue()

    def _emit(self, line: str) -> None:
        self._fh.write(line)
        self._fh.flush()

    def write(self, row: dict[str, Any]) -> None:
        values = {k: row.get(k) for k in self.columns}
        for k in ("error", "path"):
            if isinstance(values[k], str):
                values[k] = _one_line(values[k]) if k == "error" else values[k].replace("\n", " ")
        if self.format == "csv":
            self._emit(self._csv_line(list(values.values())))
        else:
            self._emit(json.dumps(values, ensure_ascii=False, allow_nan=False) + "\n")
        if values.get("sha256"):
            self.done.add(str(values["sha256"]))

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a screening output, typed (numbers, booleans, None) whether it is CSV or JSONL."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: _parse_csv_value(k, v) for k, v in row.items()} for row in csv.DictReader(fh)]


_TEXT_COLUMNS = {"path", "sha256", "status", "error", "grade_name", "quality_reasons", "model_version", "engine"}


def _parse_csv_value(key: str, value: str) -> Any:
    if value == "":
        return None
    if key in _TEXT_COLUMNS or key == "overlay":
        return value
    if value in ("True", "False"):
        return value == "True"
    if key == "grade" or key.endswith("_count"):
        return int(value)
    return float(value)


# ----------------------------------------------------------------------------------------- running


@dataclass
class ScreenSummary:
    out: Path
    images: int = 0  # inputs found
    scored: int = 0  # rows with status ok written now
    errors: int = 0  # rows with status error written now
    skipped: int = 0  # already in the output
    ungradable: int = 0
    referable: int = 0
    seconds: float = 0.0
    dropped_partial_line: bool = False

    def count(self, row: dict[str, Any] | None) -> None:
        if row is None:
            self.skipped += 1
        elif row["status"] == "ok":
            self.scored += 1
            self.ungradable += not row["gradable"]
            self.referable += bool(row["referable"])
        else:
            self.errors += 1

    def describe(self) -> str:
        rate = (self.scored + self.errors) / self.seconds if self.seconds > 0 else float("nan")
        text = (
            f"{self.images} photographs: {self.scored} scored ({self.referable} referable, {self.ungradable} "
            f"ungradable), {self.errors} errors, {self.skipped} already in {self.out}; "
            f"{self.seconds:.1f} s ({rate:.1f} photographs/s)"
        )
        if self.dropped_partial_line:
            text += "; a cut-off last line of the previous run was dropped"
        return text


@dataclass(frozen=True)
class EngineSpec:
    """How to build an engine; picklable, so Ray actors build their own."""

    kind: str = "torch"  # "torch" or "onnx"
    checkpoint: str | None = None
    onnx: str | None = None
    channels_last: bool = True
    threads: int = 0  # torch / ONNX Runtime intra-op threads (0: library default)
    lesion_fov_px: int | None = None  # side of the lesion view; None: the model's, 0: the global view's maps

    def build(self) -> Any:
        from drgnet.engines import OnnxEngine, TorchEngine

        if self.kind == "torch":
            if not self.checkpoint:
                raise ValueError("the torch engine needs --checkpoint")
            if self.threads:
                import torch

                torch.set_num_threads(self.threads)
            engine = TorchEngine.from_checkpoint(self.checkpoint, channels_last=self.channels_last)
        elif self.kind == "onnx":
            if not self.onnx:
                raise ValueError("the onnx engine needs --onnx MODEL.onnx (write one with `drgnet export-onnx`)")
            engine = OnnxEngine(self.onnx, threads=self.threads)
        else:
            raise ValueError(f"unknown engine {self.kind!r}; choose torch or onnx")
        if self.lesion_fov_px is not None:
            engine.lesion_fov_px = self.lesion_fov_px
        return engine


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="image", desc=desc, disable=not enabled)


def screen(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    engine: Any,
    options: ScreenOptions | None = None,
    batch_size: int = 8,
    workers: int = 2,
    progress: bool = True,
    sink: ScreenSink | None = None,
) -> ScreenSummary:
    """Screen photographs on this machine and append one row per photograph to ``out``.

    Args:
        inputs: Folders, glob patterns, files and CSV lists (see ``collect_inputs``).
        out: ``.csv`` or ``.jsonl`` file; an existing one is resumed.
        engine: A ``TorchEngine`` or ``OnnxEngine`` (or an ``EngineSpec`` to build one).
        options: Lesion threshold, mask folder, quality thresholds.
        batch_size: Photographs per forward pass.
        workers: DataLoader worker processes that read and preprocess (0: in this process).
        progress: Show a progress bar.
        sink: Also hand every scored photograph to this sink (``load_sink("db", ...)``: the review worklist).
    """
    from torch.utils.data import DataLoader

    options = options or ScreenOptions()
    if isinstance(engine, EngineSpec):
        engine = engine.build()
    t0 = time.perf_counter()
    paths = collect_inputs(inputs)
    with ResultWriter(out) as writer:
        summary = ScreenSummary(Path(out), images=len(paths), dropped_partial_line=writer.dropped_partial_line)
        keep = options.masks_dir is not None or sink is not None
        dataset = ScreeningDataset(
            paths,
            engine.input_size,
            writer.done,
            keep,
            options.thresholds,
            max_bytes=options.max_file_bytes,
            lesion_fov_px=engine.lesion_fov_px,
        )
        loader = DataLoader(
            dataset,
            batch_size=max(1, batch_size),
            num_workers=workers,
            collate_fn=_as_list,
            worker_init_fn=_worker_init if workers else None,
            multiprocessing_context=_loader_context() if workers else None,
        )
        with _progress(len(paths), progress, "screening") as bar:
            if sink is None:
                for batch in loader:
                    for row in score_batch(batch, engine, options):
                        summary.count(row)
                        if row is not None:
                            writer.write(row)
                    bar.update(len(batch))
            else:
                with _StoringPipeline(sink, engine, writer, summary, bar, depth=2 * max(1, batch_size)) as pipeline:
                    for batch in loader:
                        pipeline.add(batch, score_batch(batch, engine, options, pipeline))
    summary.seconds = time.perf_counter() - t0
    return summary


class _StoringPipeline:
    """Stores scored photographs in a background thread while the model works on the next batch.

    It stands in for the sink in ``score_batch`` (``store`` queues the work) and writes each row only after its
    photograph was stored, in input order, so a row in the output still means "stored". A ``ValueError`` from the
    sink turns the row into an error row, as in the synchronous path; any other exception stops the run after the
    rows before it are written. At most ``depth`` photographs wait, which bounds the memory their pixels hold.
    """

    def __init__(
        self, sink: ScreenSink, engine: Any, writer: ResultWriter, summary: ScreenSummary, bar: Any, depth: int
    ):
        from concurrent.futures import ThreadPoolExecutor

        self.sink, self.engine, self.writer, self.summary, self.bar = sink, engine, writer, summary, bar
        self.depth = depth
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="drgnet-store")
        self.queued: list[Any] = []  # futures of the batch being scored
        self.pending: collections.deque[tuple[ScreenItem, dict[str, Any] | None, Any]] = collections.deque()

    def store(self, item, row, grade_probs, lesion_probs, attention) -> None:  # noqa: ANN001 - ScreenSink.store
        self.queued.append(self.pool.submit(self.sink.store, item, row, grade_probs, lesion_probs, attention))

    def close(self) -> None:
        pass

    def add(self, batch: Sequence[ScreenItem], rows: list[dict[str, Any] | None]) -> None:
        futures = iter(self.queued)
        for item, row in zip(batch, rows, strict=True):
            stored = next(futures) if row is not None and row["status"] == "ok" else None
            self.pending.append((item, row, stored))
        self.queued = []
        self._flush(block=False)
        while len(self.pending) > self.depth:
            self._write_first()

    def _flush(self, block: bool) -> None:
        """Write the leading rows whose photographs are stored (all of them, waiting, with ``block``)."""
        while self.pending and (block or self.pending[0][2] is None or self.pending[0][2].done()):
            self._write_first()

    def _write_first(self) -> None:
        item, row, stored = self.pending.popleft()
        if stored is not None:
            try:
                stored.result()
            except ValueError as exc:
                item.error = _one_line(f"not stored: {exc}")
                row = error_row(item, self.engine.name, self.engine.model_version)
        self.summary.count(row)
        if row is not None:
            self.writer.write(row)
        self.bar.update(1)

    def __enter__(self) -> _StoringPipeline:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is None:
                self._flush(block=True)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


# -------------------------------------------------------------------------------------------------- Ray


class RayScreener:
    """A Ray Data model actor: builds its engine once, then turns batches of paths into JSON rows.

    Rows travel as JSON strings so every value comes back exactly as the local path writes it (no Arrow
    type inference over columns that are sometimes null).
    """

    def __init__(
        self,
        spec: EngineSpec,
        options: ScreenOptions,
        skip: frozenset[str] = frozenset(),
        return_maps: bool = False,
    ) -> None:
        self.engine = spec.build()
        self.options = options
        self.skip = skip
        self.return_maps = return_maps

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keep = self.options.masks_dir is not None
        items = [
            prepare_item(
                str(p),
                self.engine.input_size,
                self.skip,
                keep,
                self.options.thresholds,
                self.options.max_file_bytes,
                self.engine.lesion_fov_px,
            )
            for p in batch["path"]
        ]
        collector = _MapCollector() if self.return_maps else None
        rows = score_batch(items, self.engine, self.options, collector)
        encoded = [json.dumps(r, allow_nan=False) if r is not None else "" for r in rows]
        out = {"row": np.array(encoded, dtype=object)}
        if collector is not None:
            out["maps"] = np.array([collector.maps.get(it.path, b"") for it in items], dtype=object)
        return out


class _MapCollector:
    """Keeps each scored photograph's model-resolution maps (float16 ``.npz`` bytes) for the Ray driver's sink:
    the actors may run on machines without the database, so the driver stores what they computed."""

    def __init__(self) -> None:
        self.maps: dict[str, bytes] = {}

    def store(self, item, row, grade_probs, lesion_probs, attention) -> None:  # noqa: ANN001 - ScreenSink.store
        buffer = io.BytesIO()
        np.savez(
            buffer,
            grade_probs=np.asarray(grade_probs, np.float32),
            lesion_probs=np.asarray(lesion_probs, np.float16),
            attention=np.asarray(attention, np.float16),
        )
        self.maps[item.path] = buffer.getvalue()

    def close(self) -> None:
        pass


def _store_from_actor(row: dict[str, Any], maps: bytes, sink: ScreenSink, options: ScreenOptions) -> dict[str, Any]:
    """On the Ray driver: hand an actor's row and maps to the sink (reading the photograph again for its bytes
    and geometry). Returns the row, or an error row when the photograph changed meanwhile or the sink refused it."""
    with np.load(io.BytesIO(maps)) as z:
        probs, lesion_probs, attention = (z[k].astype(np.float32) for k in ("grade_probs", "lesion_probs", "attention"))
    item = prepare_item(
        row["path"],
        attention.shape[-1],  # the global view's side (lesion maps may come from a larger lesion view)
        keep_original=True,
        thresholds=options.thresholds,
        max_bytes=options.max_file_bytes,
    )
    if item.sha256 != row["sha256"] or not item.ready:
        item.error = f"{row['path']}: not stored: the file changed or vanished during screening"
    else:
        try:
            sink.store(item, row, probs, lesion_probs, attention)
            return row
        except ValueError as exc:
            item.error = _one_line(f"not stored: {exc}")
    failed = error_row(item, row["engine"], row["model_version"])
    failed["sha256"] = row["sha256"]
    return failed


def _ray_session(address: str) -> bool:
    """Connect to (or start) Ray; True when this call started it and should shut it down."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home
    import ray

    if ray.is_initialized():
        return False
    try:
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ValueError(
            f"cannot connect to Ray at {address!r} ({_one_line(str(exc))}); `--ray local` starts Ray on this machine"
        ) from exc
    return True


def screen_ray(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    spec: EngineSpec,
    options: ScreenOptions | None = None,
    address: str = "auto",
    concurrency: int = 2,
    batch_size: int = 8,
    cpus_per_actor: float = 1.0,
    progress: bool = True,
    sink: ScreenSink | None = None,
) -> ScreenSummary:
    """Screen on Ray Data: paths -> ``map_batches`` over a pool of ``concurrency`` model actors -> rows.

    The driver lists the inputs, streams rows back and writes them exactly as ``screen`` does (same columns,
    resume by sha256). Every node must see the photographs (and the mask folder) under the same paths, and
    have drgnet installed.

    Args:
        address: A Ray cluster address, ``"auto"`` (the cluster this machine belongs to) or ``"local"``
            (start one here). Ignored when Ray is already initialised in this process.
        concurrency: Model actors (each loads the model once).
        cpus_per_actor: CPUs Ray reserves per actor (also its torch threads).
        sink: Store every scored photograph here, on the driver (the actors send their maps back for it).
    """
    import ray

    options = options or ScreenOptions()
    started = _ray_session(address)
    t0 = time.perf_counter()
    try:
        paths = collect_inputs(inputs)
        with ResultWriter(out) as writer:
            summary = ScreenSummary(Path(out), images=len(paths), dropped_partial_line=writer.dropped_partial_line)
            if paths:
                ctx = ray.data.DataContext.get_current()
                ctx.execution_options.preserve_order = True
                ctx.enable_progress_bars = False
                threads = max(1, int(cpus_per_actor))
                actor_spec = EngineSpec(spec.kind, spec.checkpoint, spec.onnx, spec.channels_last, threads)
                blocks = max(1, min(len(paths), math.ceil(len(paths) / max(1, batch_size))))
                ds = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=blocks)
                ds = ds.map_batches(
                    RayScreener,
                    fn_constructor_kwargs={
                        "spec": actor_spec,
                        "options": options,
                        "skip": frozenset(writer.done),
                        "return_maps": sink is not None,
                    },
                    batch_size=max(1, batch_size),
                    batch_format="numpy",
                    compute=ray.data.ActorPoolStrategy(size=max(1, concurrency)),
                    num_cpus=cpus_per_actor,
                )
                with _progress(len(paths), progress, "screening (ray)") as bar:
                    for record, maps in _iter_rows(ds):
                        row = json.loads(record) if record else None
                        if sink is not None and row is not None and row["status"] == "ok":
                            row = _store_from_actor(row, maps, sink, options)
                        summary.count(row)
                        if row is not None:
                            writer.write(row)
                        bar.update(1)
    finally:
        if started:
            ray.shutdown()
    summary.seconds = time.perf_counter() - t0
    return summary


def _iter_rows(ds: Any) -> Iterator[tuple[str, bytes]]:
    for row in ds.iter_rows():
        yield row["row"], row.get("maps", b"")


__all__ = [
    "COLUMNS",
    "IMAGE_SUFFIXES",
    "EngineSpec",
    "RayScreener",
    "ResultWriter",
    "ScreenItem",
    "ScreenOptions",
    "ScreenSink",
    "SinkError",
    "ScreenSummary",
    "ScreeningDataset",
    "collect_inputs",
    "load_sink",
    "prepare_item",
    "read_photo_file",
    "read_results",
    "score_batch",
    "screen",
    "screen_ray",
]
