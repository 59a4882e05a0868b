"""Generated DICOM fundus photographs for tests (pydicom writes them; no real patient's file is needed).

Every file carries identifying values that must never be stored: :data:`IDENTIFYING` lists them.
"""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    OphthalmicPhotography8BitImageStorage,
    generate_uid,
)

PATIENT_NAME = "Zzyzxwalder^Quentinella"
BIRTH_DATE = "19370214"
PATIENT_ID = "MRN-55501234"
PRIVATE_VALUE = "SECRETCLINICTAG-7731"
INSTITUTION = "Quuxbridge Eye Infirmary"
SERIAL = "SN-00998877"
#: Values from the generated files' headers that identify the patient or the clinic.
IDENTIFYING = (PATIENT_NAME, "Zzyzxwalder", "Quentinella", BIRTH_DATE, PATIENT_ID, PRIVATE_VALUE, INSTITUTION, SERIAL)


def fundus_pixels(size: int = 96, seed: int = 0) -> np.ndarray:
    """A small reddish disc on black: enough of a field of view for the preprocessing to find."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    inside = r < size * 0.42
    img = np.zeros((size, size, 3), np.uint8)
    img[inside] = (180, 80, 40)
    img[..., 1][inside] += (rng.integers(0, 20, inside.sum())).astype(np.uint8)
    return img


def make_dicom(
    pixels: np.ndarray | None = None,
    *,
    photometric: str = "RGB",
    laterality: str | None = "L",
    series_laterality: str | None = None,
    acquisition_date: str = "20240305",
    model: str = "FundusCam 3000",
    frames: int = 1,
    burned_in: str = "NO",
) -> bytes:
    """A DICOM OP file's bytes.

    Args:
        pixels: ``(H, W, 3)`` uint8 RGB (default: :func:`fundus_pixels`).
        photometric: ``RGB``, ``YBR_FULL`` (uncompressed), ``YBR_FULL_422`` (JPEG baseline, encoded by Pillow),
            ``PALETTE COLOR`` (8-bit indices with a lookup table) or ``MONOCHROME2``.
        laterality: ``ImageLaterality`` (None: absent).
        series_laterality: ``Laterality`` (None: absent).
        frames: Number of frames (the same picture repeated).
    """
    rgb = fundus_pixels() if pixels is None else pixels
    h, w = rgb.shape[:2]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = OphthalmicPhotography8BitImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "OP"
    ds.PatientName = PATIENT_NAME
    ds.PatientBirthDate = BIRTH_DATE
    ds.PatientID = PATIENT_ID
    ds.PatientSex = "F"
    ds.InstitutionName = INSTITUTION
    ds.DeviceSerialNumber = SERIAL
    ds.Manufacturer = "Acme Optics"
    ds.ManufacturerModelName = model
    ds.AcquisitionDate = acquisition_date
    ds.AcquisitionTime = "101500"
    ds.StudyDate = acquisition_date
    ds.BurnedInAnnotation = burned_in
    if laterality is not None:
        ds.ImageLaterality = laterality
    if series_laterality is not None:
        ds.Laterality = series_laterality
    block = ds.private_block(0x0011, "ACME CLINIC", create=True)
    block.add_new(0x01, "LO", PRIVATE_VALUE)
    ds.Rows, ds.Columns = h, w
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if photometric in ("RGB", "YBR_FULL"):
        data = rgb if photometric == "RGB" else _rgb_to_ybr_full(rgb)
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
        ds.PhotometricInterpretation = photometric
        ds.PixelData = np.ascontiguousarray(np.stack([data] * frames)).tobytes()
    elif photometric == "YBR_FULL_422":
        from PIL import Image
        from pydicom.encaps import encapsulate

        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=95, subsampling="4:2:2")
        meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.LossyImageCompression = "01"
        ds.PixelData = encapsulate([buf.getvalue()] * frames)
        ds["PixelData"].VR = "OB"
    elif photometric == "PALETTE COLOR":
        index, lut = _palette(rgb)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "PALETTE COLOR"
        for colour, channel in zip(("Red", "Green", "Blue"), range(3), strict=True):
            setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
            values = (lut[:, channel].astype(np.uint16) * 257).astype("<u2")
            setattr(ds, f"{colour}PaletteColorLookupTableData", values.tobytes())
        ds.PixelData = np.stack([index] * frames).tobytes()
    elif photometric == "MONOCHROME2":
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelData = np.stack([rgb[..., 1]] * frames).tobytes()
    else:  # pragma: no cover - test helper misuse
        raise ValueError(photometric)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _rgb_to_ybr_full(rgb: np.ndarray) -> np.ndarray:
    from pydicom.pixels import convert_color_space

    return convert_color_space(rgb, "RGB", "YBR_FULL")


def _palette(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    quantised = Image.fromarray(rgb).quantize(colors=256, dither=Image.Dither.NONE)
    lut = np.zeros((256, 3), np.uint8)
    pal = np.array(quantised.getpalette()[: 256 * 3], np.uint8).reshape(-1, 3)
    lut[: len(pal)] = pal
    return np.array(quantised, np.uint8), lut
