"""Image ingestion: turn an uploaded file into a stored photograph and an ``images`` row.

What is stored is never the uploaded file itself:

- Anything Pillow cannot read as a JPEG, PNG, TIFF, BMP or WebP photograph is refused, and so are images over
  :data:`MAX_PIXELS` (decompression bombs), with a :class:`ValueError` that names the client's file.
- EXIF orientation is applied to the pixels, so the stored copy is upright without metadata.
- All metadata is dropped (EXIF with GPS and camera serials, XMP, IPTC, text chunks, ICC profiles): the pixels are
  copied into a fresh image and re-encoded.
- The stored copy is always a lossless PNG. A clinician grades microaneurysms a few pixels wide, so re-encoding a
  JPEG again lossily is not an option; PNG also keeps 16-bit greyscale exactly. The price is larger files.
- The image's identity is the sha256 of the stored PNG bytes. Encoding is deterministic, so the same upload (and the
  same pixels with different metadata) gives the same hash: it is stored once and the existing row is returned.
- The file is stored under ``<data dir>/images/ab/cdef....png`` (from the hash, never from the client's file name)
  atomically and flushed to disk *before* the row is added; a transaction that never commits leaves an orphan file
  for :meth:`db.artifacts.ArtifactStore.gc` to remove, never a row without its file.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError
from sqlalchemy.orm import Session

from db.artifacts import IMAGES_DIRNAME, image_store, sha256_hex
from db.engine import data_dir as default_data_dir
from db.models import Eye, Image
from db.repository import add_image, get_image_by_sha

#: Largest photograph accepted (80 megapixels: well above any fundus camera, far below a decompression bomb).
MAX_PIXELS = 80_000_000
#: Formats a fundus camera or PACS export produces.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "TIFF", "BMP", "WEBP", "MPO"})

_KEEP_MODES = {"L", "RGB", "I;16", "I"}  # 8-bit grey and colour, 16-bit grey: PNG stores them losslessly
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class PreparedImage:
    """A decoded, upright, metadata-free photograph encoded as PNG, ready to store."""

    png: bytes
    sha256: str
    width: int
    height: int
    mode: str
    original_format: str


@dataclass(frozen=True)
class IngestResult:
    """The image row of an upload; ``created`` is False when the photograph was already stored."""

    image: Image
    created: bool


def client_filename(filename: str | None) -> str:
    """The final component of a client-supplied file name, safe to display and store as text (never as a path)."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = _CONTROL_RE.sub("", name).strip()
    return name[:255] or "unnamed"


def prepare_image(data: bytes, filename: str, *, max_pixels: int = MAX_PIXELS) -> PreparedImage:
    """Validate, orient and strip an uploaded image, and encode it as PNG.

    Args:
        data: The uploaded file's bytes.
        filename: The client's file name, used in error messages only.
        max_pixels: Refuse larger images.

    Raises:
        ValueError: naming the file and what is wrong with it (not an image, too large, damaged, unsupported).
    """
    name = client_filename(filename)
    if not data:
        raise ValueError(f"{name}: the file is empty")
    if len(data) >= 132 and data[128:132] == b"DICM":
        # Its header identifies the patient: only the de-identifying reader may turn it into pixels.
        raise ValueError(
            f"{name}: a DICOM file; it is stored only after de-identification and decoding "
            "(feedback.intake.prepare_upload does both; upload and screen --db use it)"
        )
    with warnings.catch_warnings():
        # Pillow warns (rather than raises) between its own limit and twice that; treat both as refusal.
        warnings.simplefilter("error", PILImage.DecompressionBombWarning)
        try:
            im = PILImage.open(io.BytesIO(data))
        except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
            raise ValueError(
                f"{name}: declares far more pixels than the limit of {max_pixels / 1e6:.0f} megapixels "
                "(a decompression bomb or a damaged header); not stored"
            ) from None
        except UnidentifiedImageError:
            raise ValueError(
                f"{name}: not an image, or in a format this server does not read "
                f"(accepted: {', '.join(sorted(ACCEPTED_FORMATS - {'MPO'}))})"
            ) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ValueError(f"{name}: unreadable image header ({exc})") from None
        with im:
            fmt = im.format or "unknown"
            if fmt not in ACCEPTED_FORMATS:
                raise ValueError(
                    f"{name}: {fmt} images are not accepted; upload {', '.join(sorted(ACCEPTED_FORMATS - {'MPO'}))}"
                )
            if fmt == "TIFF" and getattr(im, "n_frames", 1) > 1:
                raise ValueError(
                    f"{name}: a multi-page TIFF ({im.n_frames} pages): which page is the photograph is unknown; "
                    "upload each photograph as a single-page file"
                )
            width, height = im.size
            if width <= 0 or height <= 0:
                raise ValueError(f"{name}: the image has no pixels ({width}x{height})")
            if width * height > max_pixels:
                raise ValueError(
                    f"{name}: {width}x{height} is {width * height / 1e6:.1f} megapixels, over the limit of "
                    f"{max_pixels / 1e6:.0f} megapixels; downscale it before uploading"
                )
            try:
                im.load()
                upright = ImageOps.exif_transpose(im)
            except Exception as exc:  # decoders raise OSError, SyntaxError, struct.error ...: all mean "damaged"
                raise ValueError(f"{name}: damaged or truncated image data ({exc})") from None
    if upright is None:  # pragma: no cover - only with in_place=True
        upright = im
    upright = _normalise_mode(upright, name)
    # A fresh image from the raw pixels carries no EXIF, XMP, ICC profile, text chunks or DPI.
    clean = PILImage.frombytes(upright.mode, upright.size, upright.tobytes())
    buf = io.BytesIO()
    clean.save(buf, format="PNG")
    png = buf.getvalue()
    return PreparedImage(
        png=png,
        sha256=sha256_hex(png),
        width=clean.width,
        height=clean.height,
        mode=clean.mode,
        original_format=fmt,
    )


def _normalise_mode(im: PILImage.Image, name: str) -> PILImage.Image:
    if im.mode in _KEEP_MODES:
        return im
    if im.mode in ("I;16B", "I;16L", "I;16N"):
        return im.convert("I")
    if im.mode in ("1", "LA", "La"):
        return im.convert("L")
    if im.mode in ("F",):
        raise ValueError(f"{name}: floating-point images are not supported; export 8- or 16-bit")
    # Palette, alpha, CMYK, YCbCr, LAB ...: a fundus photograph is colour without transparency.
    if im.mode in ("P", "PA") and "transparency" in im.info:
        im = im.convert("RGBA")
    return im.convert("RGB")


def ingest_image(
    session: Session,
    data: bytes,
    filename: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    eye: Eye | str = Eye.UNKNOWN,
    patient_id: str | None = None,
    source: str | None = None,
    uploaded_by_id: int | None = None,
    max_pixels: int = MAX_PIXELS,
    prepared: PreparedImage | None = None,
    acquisition_date: date | None = None,
    device_model: str | None = None,
) -> IngestResult:
    """Store an uploaded photograph and add its row (in the caller's transaction), or find it if already stored.

    Args:
        session: Open session; commit it to keep the image.
        data: The uploaded file's bytes.
        filename: The client's file name (kept for display only: final component, control characters removed).
        data_dir: Data directory (default: ``DRGNET_DATA_DIR`` or ``./data``).
        eye: Left, right or unknown.
        patient_id: Pseudonymous patient id.
        source: Where it came from (clinic, camera, batch).
        uploaded_by_id: The uploading user.
        max_pixels: Refuse larger images.
        prepared: ``prepare_image(data, filename)`` done beforehand (it is the costly part: a caller may run it
            outside the transaction, in parallel); ``data`` is then not read again.
        acquisition_date: When the photograph was taken (a DICOM header's, kept after de-identification).
        device_model: The camera's manufacturer and model name.

    Raises:
        ValueError: for anything that is not an acceptable photograph (the message names the client's file).
    """
    if prepared is None:
        prepared = prepare_image(data, filename, max_pixels=max_pixels)
    store = image_store(data_dir)
    existing = get_image_by_sha(session, prepared.sha256)
    if existing is not None:
        if not store.exists(prepared.sha256):  # lost from disk: we hold the exact bytes, so restore them
            store.put_bytes(prepared.png, "png")
        return IngestResult(existing, created=False)
    # The file first, durably; only then the row. A crash in between leaves an orphan file, never a dangling row.
    store.put_bytes(prepared.png, "png")
    image, created = add_image(
        session,
        sha256=prepared.sha256,
        path=f"{IMAGES_DIRNAME}/{store.relative_path(prepared.sha256, 'png')}",
        original_filename=client_filename(filename),
        width=prepared.width,
        height=prepared.height,
        eye=eye,
        patient_id=patient_id,
        source=source,
        uploaded_by_id=uploaded_by_id,
        acquisition_date=acquisition_date,
        device_model=device_model,
    )
    return IngestResult(image, created)


def image_path(image: Image, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where an image's stored file lies."""
    return Path(data_dir if data_dir is not None else default_data_dir()) / image.path


def read_image_bytes(image: Image, data_dir: str | os.PathLike[str] | None = None) -> bytes:
    """The stored PNG of an image, verified against its sha256.

    Raises:
        FileNotFoundError: when the file is missing.
        ValueError: when the file is corrupt (the message names it).
    """
    return image_store(data_dir).get_bytes(image.sha256)
