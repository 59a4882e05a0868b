"""Content-addressed files on disk: lesion masks, probability and attention maps, stored photographs.

A file's name is the sha256 of its bytes, split git-style: ``<root>/ab/cdef....png`` for hash ``abcdef...``. The
database keeps only hashes, so a file is written once however many rows refer to it, and a file whose bytes no
longer match its name is detected on every read.

Writes are atomic: bytes go to a temporary file (``.tmp-*``) in the target folder, are fsync'ed and then renamed
onto the final name, so a final name never holds a partial file, even if the process is killed mid-write. Files no
row refers to (for example written by an upload that crashed before its transaction committed) are removed by
:meth:`ArtifactStore.gc`.

Two stores live under the data directory: ``artifacts/`` (maps and masks; :func:`artifact_store`) and ``images/``
(photographs; :func:`image_store`). They are collected separately, each against its own set of referenced hashes
(:func:`referenced_artifact_hashes`, :func:`referenced_image_hashes`).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from db.engine import data_dir as default_data_dir
from db.hashing import is_sha256, sha256_hex
from db.repository import record_audit, referenced_artifact_hashes, referenced_image_hashes

__all__ = [
    "ArtifactStore",
    "GcReport",
    "artifact_store",
    "atomic_write",
    "collect_garbage",
    "image_store",
    "is_sha256",
    "referenced_artifact_hashes",
    "referenced_image_hashes",
    "sha256_hex",
]

ARTIFACTS_DIRNAME = "artifacts"
IMAGES_DIRNAME = "images"
TEMP_PREFIX = ".tmp-"

#: Unreferenced files younger than this are kept: their row may not be committed yet.
DEFAULT_MIN_AGE_S = 3600.0
#: Temporary files older than this belong to a writer that died.
DEFAULT_TEMP_MIN_AGE_S = 60.0

_EXT_RE = re.compile(r"[a-z0-9]{1,8}")
# Fixed zip entry timestamps make .npz bytes depend only on the arrays, so equal maps share one file.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either its old content or all of ``data``, never a part.

    The bytes go to a temporary file in the same folder (same file system, so the rename is atomic), are flushed to
    disk, and the temporary file is renamed onto ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)


@dataclass
class GcReport:
    """What :meth:`ArtifactStore.gc` removed (or would remove, on a dry run)."""

    removed: list[Path] = field(default_factory=list)
    temp_removed: list[Path] = field(default_factory=list)
    kept: int = 0
    bytes_freed: int = 0


class ArtifactStore:
    """Content-addressed files under one root folder.

    Args:
        root: Folder of the store; created on the first write.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

    @staticmethod
    def _check_hash(sha256: str) -> str:
        if not is_sha256(sha256):
            raise ValueError(f"{sha256!r} is not a sha256 hex digest (64 lower-case hex characters)")
        return sha256

    def relative_path(self, sha256: str, ext: str) -> str:
        """Path of the file for ``sha256`` with extension ``ext``, relative to the root, with forward slashes."""
        self._check_hash(sha256)
        if not _EXT_RE.fullmatch(ext):
            raise ValueError(f"file extension {ext!r} must be 1-8 lower-case letters or digits")
        return f"{sha256[:2]}/{sha256[2:]}.{ext}"

    def path(self, sha256: str, ext: str) -> Path:
        """Absolute location of the file for ``sha256`` with extension ``ext`` (whether or not it exists)."""
        return self.root / self.relative_path(sha256, ext)

    def find(self, sha256: str) -> Path | None:
        """The stored file for ``sha256`` whatever its extension, or None."""
        self._check_hash(sha256)
        folder = self.root / sha256[:2]
        if not folder.is_dir():
            return None
        for candidate in folder.glob(f"{sha256[2:]}.*"):
            if candidate.is_file():
                return candidate
        return None

    def exists(self, sha256: str) -> bool:
        """True if a file for ``sha256`` is stored."""
        return self.find(sha256) is not None

    def put_bytes(self, data: bytes, ext: str = "bin") -> str:
        """Store ``data`` and return its sha256; storing the same bytes again writes nothing new.

        An existing file with the right name but the wrong content (disk corruption) is replaced. An existing good
        file gets a fresh modification time, so :meth:`gc` treats it as just written.
        """
        sha = sha256_hex(data)
        target = self.path(sha, ext)
        if target.is_file():
            try:
                if sha256_hex(target.read_bytes()) == sha:
                    os.utime(target)
                    return sha
            except OSError:
                pass
        atomic_write(target, data)
        return sha

    def get_bytes(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256``, verified against the hash.

        Raises:
            FileNotFoundError: when no file for the hash exists.
            ValueError: when the file's content does not match its hash (the message names the file).
        """
        path = self.find(sha256)
        if path is None:
            raise FileNotFoundError(f"artifact {sha256} is not in the store at {self.root}")
        data = path.read_bytes()
        actual = sha256_hex(data)
        if actual != sha256:
            raise ValueError(
                f"{path}: artifact is corrupt (content sha256 {actual} does not match its name {sha256}); "
                "restore it from a backup or delete it and regenerate the prediction or annotation"
            )
        return data

    def put_png(self, array: np.ndarray) -> str:
        """Store a uint8 mask (H, W), or an RGB / RGBA image (H, W, 3|4), as a lossless PNG; return its sha256."""
        arr = np.asarray(array)
        if arr.dtype != np.uint8:
            raise ValueError(
                f"PNG artifacts take uint8 arrays, got {arr.dtype}; scale masks to 0-255 or 0/1 and cast with "
                ".astype(np.uint8), or store float maps with put_npz"
            )
        if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
            raise ValueError(f"PNG artifacts take (H, W), (H, W, 3) or (H, W, 4) arrays, got shape {arr.shape}")
        if arr.size == 0:
            raise ValueError(f"cannot store an empty array of shape {arr.shape}")
        buf = io.BytesIO()
        PILImage.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG")
        return self.put_bytes(buf.getvalue(), "png")

    def get_png(self, sha256: str) -> np.ndarray:
        """The array stored by :meth:`put_png` under ``sha256`` (verified)."""
        data = self.get_bytes(sha256)
        with PILImage.open(io.BytesIO(data)) as im:
            if im.format != "PNG":
                raise ValueError(f"artifact {sha256} is a {im.format} file, not a PNG")
            return np.asarray(im)

    def get_map(self, sha256: str) -> np.ndarray:
        """A single stored map, whether it was stored by :meth:`put_png` or as the ``"map"`` of :meth:`put_npz`."""
        path = self.find(sha256)
        if path is not None and path.suffix == ".npz":
            arrays = self.get_npz(sha256)
            if "map" not in arrays:
                raise ValueError(f"{path}: holds {', '.join(sorted(arrays))}, not a single map")
            return arrays["map"]
        return self.get_png(sha256)

    def put_npz(self, arrays: Mapping[str, np.ndarray] | np.ndarray) -> str:
        """Store numeric arrays (float probability or attention maps) as an .npz; return its sha256.

        A single array is stored under the key ``"map"``. Equal arrays give byte-identical files (fixed zip
        timestamps, sorted keys), so they are stored once.
        """
        items = {"map": arrays} if isinstance(arrays, np.ndarray) else dict(arrays)
        if not items:
            raise ValueError("put_npz needs at least one array")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for key in sorted(items):
                if not isinstance(key, str) or not key or "/" in key:
                    raise ValueError(f"npz keys must be non-empty names without '/', got {key!r}")
                arr = np.asarray(items[key])
                if arr.dtype.hasobject:
                    raise ValueError(f"array {key!r} has dtype {arr.dtype}; only numeric arrays can be stored")
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w") as fh:
                    np.lib.format.write_array(fh, np.ascontiguousarray(arr), allow_pickle=False)
        return self.put_bytes(buf.getvalue(), "npz")

    def get_npz(self, sha256: str) -> dict[str, np.ndarray]:
        """The arrays stored by :meth:`put_npz` under ``sha256`` (verified), by key."""
        data = self.get_bytes(sha256)
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}

    def iter_files(self) -> Iterator[tuple[str, Path]]:
        """Every stored file as ``(sha256, path)``; temporary and foreign files are skipped."""
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if not (folder.is_dir() and len(folder.name) == 2):
                continue
            for path in sorted(folder.iterdir()):
                sha = folder.name + path.name.split(".", 1)[0]
                if path.is_file() and not path.name.startswith(TEMP_PREFIX) and is_sha256(sha):
                    yield sha, path

    def gc(
        self,
        referenced: Iterable[str],
        *,
        min_age_s: float = DEFAULT_MIN_AGE_S,
        temp_min_age_s: float = DEFAULT_TEMP_MIN_AGE_S,
        dry_run: bool = False,
    ) -> GcReport:
        """Delete stored files whose hash is not in ``referenced``, and abandoned temporary files.

        Args:
            referenced: Hashes that rows of the database still refer to.
            min_age_s: Keep unreferenced files modified less than this many seconds ago: a writer may have stored
                the file and not yet committed the row that refers to it.
            temp_min_age_s: Remove temporary files older than this (their writer died mid-write).
            dry_run: Report what would be removed, remove nothing.
        """
        keep = set(referenced)
        report = GcReport()
        if not self.root.is_dir():
            return report
        now = time.time()
        for folder in sorted(self.root.iterdir()):
            if not (folder.is_dir() and len(folder.name) == 2):
                continue
            for path in sorted(folder.iterdir()):
                if not path.is_file():
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                age = now - st.st_mtime
                if path.name.startswith(TEMP_PREFIX):
                    if age >= temp_min_age_s:
                        report.temp_removed.append(path)
                        report.bytes_freed += st.st_size
                        if not dry_run:
                            path.unlink(missing_ok=True)
                    continue
                sha = folder.name + path.name.split(".", 1)[0]
                if not is_sha256(sha):
                    continue  # not ours: leave it alone
                if sha in keep or age < min_age_s:
                    report.kept += 1
                    continue
                report.removed.append(path)
                report.bytes_freed += st.st_size
                if not dry_run:
                    path.unlink(missing_ok=True)
        return report


def artifact_store(data_dir: str | os.PathLike[str] | None = None) -> ArtifactStore:
    """The store of lesion masks and maps: ``<data dir>/artifacts``."""
    return ArtifactStore(Path(data_dir if data_dir is not None else default_data_dir()) / ARTIFACTS_DIRNAME)


def image_store(data_dir: str | os.PathLike[str] | None = None) -> ArtifactStore:
    """The store of photographs: ``<data dir>/images``."""
    return ArtifactStore(Path(data_dir if data_dir is not None else default_data_dir()) / IMAGES_DIRNAME)


def collect_garbage(
    session: Session,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    min_age_s: float = DEFAULT_MIN_AGE_S,
    temp_min_age_s: float = DEFAULT_TEMP_MIN_AGE_S,
    dry_run: bool = False,
) -> dict[str, GcReport]:
    """Run :meth:`ArtifactStore.gc` on both stores of ``data_dir`` against the hashes the database refers to.

    A run that removed files is audited (``storage.gc``: how many, how large, and the hashes removed) in the
    caller's transaction.

    Returns:
        ``{"artifacts": report, "images": report}``.
    """
    opts = {"min_age_s": min_age_s, "temp_min_age_s": temp_min_age_s, "dry_run": dry_run}
    reports = {
        ARTIFACTS_DIRNAME: artifact_store(data_dir).gc(referenced_artifact_hashes(session), **opts),
        IMAGES_DIRNAME: image_store(data_dir).gc(referenced_image_hashes(session), **opts),
    }
    removed = {name: r.removed + r.temp_removed for name, r in reports.items()}
    if not dry_run and any(removed.values()):
        record_audit(
            session,
            "storage.gc",
            "storage",
            details={
                "bytes_freed": sum(r.bytes_freed for r in reports.values()),
                **{
                    name: {
                        "removed": len(reports[name].removed),
                        "temp_removed": len(reports[name].temp_removed),
                        # Hashes (not paths): what was lost can be matched against backups. Bounded, as a log entry.
                        "hashes": [p.parent.name + p.name.split(".", 1)[0] for p in reports[name].removed][:1000],
                    }
                    for name in reports
                },
            },
        )
    return reports
