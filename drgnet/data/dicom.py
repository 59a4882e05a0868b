"""DICOM fundus photographs (ophthalmic photography, modality OP) in: decoded, de-identified, a few attributes kept.

Fundus cameras and PACS deliver DICOM. :func:`read_dicom` turns a DICOM file's bytes into the photograph's pixels
plus the handful of header values the product uses, and nothing else:

- The header is de-identified first with dicognito's implementation of the DICOM PS3.15 Basic Application Level
  Confidentiality Profile (names, ids, UIDs, addresses, dates and times replaced), every private attribute is
  removed (the profile's rule for private tags), and then everything outside the image pixel module is dropped
  (:func:`deidentify`). No header value leaves this module except the values of :data:`KEPT_ATTRIBUTES`.
- What is kept (read before the profile shifts the dates): the eye (``ImageLaterality``, else ``Laterality``), the
  acquisition date (date only, no time: the profile's "retain longitudinal temporal information" option, because
  screening intervals are clinical information), and the camera's manufacturer and model name. Never the device
  serial number, station or institution.
- A photograph whose header says it has burned-in annotation (``BurnedInAnnotation = YES``) is refused: its pixels
  may show a name.
- Colour: RGB, YBR_FULL and YBR_FULL_422 (converted to RGB), PALETTE COLOR (through its lookup table), MONOCHROME1/2
  (grey; MONOCHROME1 inverted). Compressed transfer syntaxes (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000,
  RLE) decode through pydicom's plugins (pylibjpeg with its libjpeg and openjpeg plugins, or Pillow).
- Multi-frame files are refused with a message: a fundus photograph is one frame, and the multi-frame OP objects
  cameras write (stereo pairs, sequences) are not independent photographs that could each be graded alone.
  Export each frame as its own instance.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

import numpy as np

#: The only header values read from a DICOM file. Everything else is dropped before anything is stored.
KEPT_ATTRIBUTES = (
    "ImageLaterality",
    "Laterality",
    "AcquisitionDateTime",
    "AcquisitionDate",
    "ContentDate",
    "Manufacturer",
    "ManufacturerModelName",
)
DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
_LATERALITY = {"L": "left", "R": "right"}


@dataclass(frozen=True)
class DicomPhotograph:
    """A decoded, de-identified DICOM photograph and the header values kept from it."""

    pixels: np.ndarray  # (H, W, 3) RGB or (H, W) grey; uint8 or uint16 as stored
    eye: str | None  # "left", "right" or None (both, unknown or absent)
    acquisition_date: dt.date | None
    manufacturer: str | None
    device_model: str | None
    photometric: str
    transfer_syntax: str

    def kept(self) -> dict[str, str | None]:
        """The kept header values as text (what may be stored or exported)."""
        return {
            "eye": self.eye,
            "acquisition_date": self.acquisition_date.isoformat() if self.acquisition_date else None,
            "manufacturer": self.manufacturer,
            "device_model": self.device_model,
        }


def is_dicom(data: bytes, name: str = "") -> bool:
    """True for a DICOM Part 10 file (``DICM`` after the 128-byte preamble), or a ``.dcm`` name."""
    return (len(data) >= 132 and data[128:132] == b"DICM") or any(name.lower().endswith(s) for s in DICOM_SUFFIXES)


def _text(ds, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None:
        return None
    text = str(value).strip()
    return text[:128] or None


def _date(ds) -> dt.date | None:
    for keyword in ("AcquisitionDateTime", "AcquisitionDate", "ContentDate"):
        raw = _text(ds, keyword)
        if raw and len(raw) >= 8 and raw[:8].isdigit():
            try:
                return dt.date(int(raw[:4]), int(raw[4:6]), int(raw[6:8]))
            except ValueError:
                continue
    return None


def _eye(ds) -> str | None:
    for keyword in ("ImageLaterality", "Laterality"):
        raw = (_text(ds, keyword) or "").upper()
        if raw in _LATERALITY:
            return _LATERALITY[raw]
    return None


#: What survives de-identification besides the file meta: the image pixel module and the de-identification record.
_PIXEL_MODULE = frozenset(
    {
        "SOPClassUID",
        "Modality",
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "Rows",
        "Columns",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "PlanarConfiguration",
        "NumberOfFrames",
        "PixelData",
        "FloatPixelData",
        "DoubleFloatPixelData",
        "LossyImageCompression",
        "BurnedInAnnotation",
        "PatientIdentityRemoved",
        "DeidentificationMethod",
        *(f"{c}PaletteColorLookupTable{part}" for c in ("Red", "Green", "Blue") for part in ("Descriptor", "Data")),
        *(f"Segmented{c}PaletteColorLookupTableData" for c in ("Red", "Green", "Blue")),
    }
)


def deidentify(ds) -> None:
    """De-identify a dataset in place: the PS3.15 basic profile, no private attributes, nothing beyond the pixels.

    dicognito applies the basic profile (names, ids, UIDs, addresses, institution, dates and times replaced);
    private attributes are removed as the profile requires; then everything but the image pixel module is
    dropped, because this product needs nothing else from the header (the kept values are read beforehand), and
    attributes the profile's implementation misses (a device serial number, free-text comments) go with it.
    """
    from dicognito.anonymizer import Anonymizer

    Anonymizer().anonymize(ds)
    ds.remove_private_tags()  # walks into sequence items too
    for elem in list(ds):
        if elem.keyword not in _PIXEL_MODULE:
            del ds[elem.tag]


def read_dicom(data: bytes, name: str, *, max_pixels: int | None = None) -> DicomPhotograph:
    """Decode and de-identify a DICOM photograph.

    Args:
        data: The file's bytes.
        name: The file's name, for error messages.
        max_pixels: Refuse larger photographs (checked on the header, before decoding).

    Raises:
        ValueError: naming the file and the problem (not DICOM, no pixels, multi-frame, burned-in annotation,
            a compressed transfer syntax no installed decoder reads, an unknown colour space).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=data[128:132] != b"DICM")
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{name}: not a readable DICOM file ({exc})") from None
    if "PixelData" not in ds and data[128:132] != b"DICM":
        raise ValueError(f"{name}: not a readable DICOM file (no DICM marker, no pixel data)")
    if "PixelData" not in ds:
        raise ValueError(f"{name}: a DICOM file without pixel data (not an image)")
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        raise ValueError(
            f"{name}: multi-frame DICOM ({frames} frames) is not read: a fundus photograph is a single frame; "
            "export each frame as its own instance"
        )
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    if rows <= 0 or cols <= 0:
        raise ValueError(f"{name}: the DICOM header declares no pixels ({cols}x{rows})")
    if max_pixels is not None and rows * cols > max_pixels:
        raise ValueError(
            f"{name}: {cols}x{rows} is {rows * cols / 1e6:.1f} megapixels, over the limit of "
            f"{max_pixels / 1e6:.0f} megapixels"
        )
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        raise ValueError(f"{name}: the DICOM header says the pixels carry burned-in annotation (names); not read")
    eye, date = _eye(ds), _date(ds)
    manufacturer, model = _text(ds, "Manufacturer"), _text(ds, "ManufacturerModelName")
    transfer_syntax = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "")
    try:
        deidentify(ds)
    except Exception as exc:  # noqa: BLE001 - a header the profile cannot process is not stored at all
        raise ValueError(f"{name}: DICOM de-identification failed ({type(exc).__name__}: {exc}); not read") from None
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    pixels = _pixels(ds, photometric, name)
    return DicomPhotograph(
        pixels=pixels,
        eye=eye,
        acquisition_date=date,
        manufacturer=manufacturer,
        device_model=model,
        photometric=photometric,
        transfer_syntax=transfer_syntax,
    )


def _pixels(ds, photometric: str, name: str) -> np.ndarray:
    from pydicom.pixels import apply_color_lut

    try:
        # as_rgb converts YBR_FULL / YBR_FULL_422 (and JPEG's YCbCr) to RGB.
        array = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        syntax = getattr(ds.file_meta, "TransferSyntaxUID", None)
        label = getattr(syntax, "name", syntax)
        raise ValueError(f"{name}: cannot decode DICOM pixel data in {label} ({exc})") from None
    except (ValueError, AttributeError, KeyError, TypeError, EOFError) as exc:
        raise ValueError(f"{name}: damaged DICOM pixel data ({exc})") from None
    if photometric == "PALETTE COLOR":
        try:
            array = apply_color_lut(array, ds)
        except (ValueError, AttributeError, KeyError) as exc:
            raise ValueError(f"{name}: PALETTE COLOR image with an unusable lookup table ({exc})") from None
        bits = int(ds.get("RedPaletteColorLookupTableDescriptor", [0, 0, 8])[2])
        # 16-bit table entries span 0-65535: keep their top byte for an 8-bit photograph.
        array = (np.asarray(array) >> 8).astype(np.uint8) if bits > 8 else np.asarray(array).astype(np.uint8)
    elif photometric in ("MONOCHROME1", "MONOCHROME2"):
        if array.ndim != 2:
            raise ValueError(f"{name}: a {photometric} image must have one sample per pixel, got {array.shape}")
        if int(ds.get("PixelRepresentation", 0)) == 1:
            array = array.astype(np.int32) - int(array.min())
        if photometric == "MONOCHROME1":
            peak = (1 << int(ds.get("BitsStored", 8))) - 1
            array = peak - array.astype(np.int64)
    elif photometric not in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"):
        raise ValueError(f"{name}: DICOM colour space {photometric or 'missing'} is not supported")
    array = np.asarray(array)
    bits_stored = int(ds.get("BitsStored", 8))
    if array.dtype != np.uint8:
        array = np.clip(array, 0, None)
        if bits_stored <= 8:
            array = array.astype(np.uint8)
        else:  # scale 10-, 12- or 14-bit values to the full 16-bit range, as every 16-bit reader expects
            array = (array.astype(np.uint32) << (16 - min(bits_stored, 16))).clip(0, 65535).astype(np.uint16)
    if array.ndim == 3 and array.shape[2] != 3:
        raise ValueError(f"{name}: unexpected DICOM pixel layout {array.shape}")
    return np.ascontiguousarray(array)


def to_png(photo: DicomPhotograph) -> bytes:
    """The photograph's pixels as a PNG (lossless; 16-bit grey kept), with no metadata."""
    from PIL import Image

    a = photo.pixels
    if a.ndim == 2 and a.dtype == np.uint16:
        im = Image.fromarray(a.astype(np.int32), mode="I")  # PNG stores it as 16-bit grey
    elif a.ndim == 3 and a.dtype == np.uint16:
        im = Image.fromarray((a >> 8).astype(np.uint8), mode="RGB")  # Pillow has no 16-bit RGB PNG writer
    else:
        im = Image.fromarray(a)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()
