"""Reading and preprocessing photographs in DataLoader worker processes; a file that fails becomes an error item."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import multiprocessing.context
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from drgnet.data.preprocess import NotFundusError, Preprocessed, load_rgb, preprocess
from drgnet.data.quality import NO_FIELD_OF_VIEW, ImageQuality, QualityThresholds, assess_quality
from drgnet.screening.inputs import MAX_FILE_BYTES
from drgnet.screening.outputs import one_line
from drgnet.tiling import lesion_side, lesion_view


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
        return ScreenItem(path, error=one_line(str(exc)))
    except OSError as exc:
        return ScreenItem(path, error=one_line(f"{path}: cannot read the file ({exc.strerror or exc})"))
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
        return ScreenItem(path, sha, error=one_line(str(exc)), quality=NO_FIELD_OF_VIEW)
    except (ValueError, OSError, MemoryError) as exc:
        return ScreenItem(path, sha, error=one_line(str(exc)))
    except Exception as exc:  # noqa: BLE001 - one odd file must never stop a screening run
        return ScreenItem(path, sha, error=one_line(f"{path}: {type(exc).__name__}: {exc}"))
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
