"""One way in for every photograph that will be stored: ordinary image files and de-identified DICOM.

Upload (the app), ``drgnet screen --db`` and ``drgnet import-labels`` call :func:`prepare_upload` before
:func:`db.ingest.ingest_image`. Ordinary images go through :func:`db.ingest.prepare_image` (validated, oriented,
metadata stripped). A DICOM file is decoded by :func:`drgnet.data.dicom.read_dicom`, which applies the PS3.15 basic
de-identification profile and keeps only the eye, acquisition date and camera model; its pixels then go through the
same ``prepare_image`` as any PNG. The client's file name of a DICOM file is not kept (PACS exports name files after
patients or UIDs): it is replaced by the stored photograph's hash. The database layer refuses raw DICOM bytes, so
nothing identifying can be stored by a caller that skips this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from db.ingest import MAX_PIXELS, PreparedImage, client_filename, prepare_image
from drgnet.data.dicom import is_dicom, read_dicom, to_png


@dataclass(frozen=True)
class Intake:
    """A photograph ready for :func:`db.ingest.ingest_image`, with what its file told about it."""

    prepared: PreparedImage
    filename: str  # what the database may keep as the file's name
    eye: str | None = None  # "left" / "right" from a DICOM header, else None
    acquisition_date: date | None = None
    device_model: str | None = None
    dicom: bool = False


def prepare_upload(data: bytes, filename: str, *, max_pixels: int = MAX_PIXELS) -> Intake:
    """Validate and decode an uploaded file (any accepted image format, or DICOM) into a storable photograph.

    Raises:
        ValueError: naming the file and what is wrong with it.
    """
    name = client_filename(filename)
    if not (data and is_dicom(data, name)):
        return Intake(prepare_image(data, name, max_pixels=max_pixels), name)
    photo = read_dicom(data, name, max_pixels=max_pixels)
    prepared = prepare_image(to_png(photo), name, max_pixels=max_pixels)
    device = " ".join(v for v in (photo.manufacturer, photo.device_model) if v) or None
    return Intake(
        prepared,
        filename=f"dicom-{prepared.sha256[:12]}.png",
        eye=photo.eye,
        acquisition_date=photo.acquisition_date,
        device_model=device,
        dicom=True,
    )
