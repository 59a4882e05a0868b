"""Image ingestion: validation, orientation, metadata stripping, dedupe, safe paths, crash-safe ordering."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags
from PIL import Image as PILImage
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.artifacts import collect_garbage, image_store, sha256_hex
from db.ingest import client_filename, image_path, ingest_image, prepare_image, read_image_bytes
from db.models import Image

RED, BLUE = (220, 30, 30), (30, 30, 220)


def _encode(im: PILImage.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _two_halves(width: int = 60, height: int = 40) -> PILImage.Image:
    """Left half red, right half blue."""
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    arr[:, : width // 2] = RED
    arr[:, width // 2 :] = BLUE
    return PILImage.fromarray(arr)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels but carries almost no data (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _count_images(Session: sessionmaker[Session]) -> int:
    with Session() as session:
        return session.scalar(select(func.count(Image.id)))


def _stored_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in (data_dir / "images").rglob("*") if p.is_file())


def test_the_same_upload_twice_is_stored_once(Session: sessionmaker[Session], data_dir: Path):
    data = _encode(_two_halves(), "JPEG", quality=90)
    with Session.begin() as session:
        first = ingest_image(session, data, "eye.jpg", data_dir=data_dir, eye="left", patient_id="P-001")
    with Session.begin() as session:
        again = ingest_image(session, data, "copy of eye.jpg", data_dir=data_dir)
    assert first.created and not again.created
    assert again.image.id == first.image.id and again.image.original_filename == "eye.jpg"
    assert _count_images(Session) == 1 and len(_stored_files(data_dir)) == 1
    stored = read_image_bytes(first.image, data_dir)
    assert sha256_hex(stored) == first.image.sha256
    assert image_path(first.image, data_dir) == data_dir / first.image.path


def test_same_pixels_with_different_metadata_dedupe(Session: sessionmaker[Session], data_dir: Path):
    im = _two_halves()
    exif = PILImage.Exif()
    exif[ExifTags.Base.ImageDescription] = "exported by the PACS"
    with Session.begin() as session:
        a = ingest_image(session, _encode(im, "JPEG", quality=90), "a.jpg", data_dir=data_dir)
        b = ingest_image(session, _encode(im, "JPEG", quality=90, exif=exif), "b.jpg", data_dir=data_dir)
    assert (a.created, b.created) == (True, False) and a.image.id == b.image.id


def test_exif_is_stripped_and_orientation_applied(Session: sessionmaker[Session], data_dir: Path):
    exif = PILImage.Exif()
    exif[ExifTags.Base.Orientation] = 6  # "rotate 90 degrees clockwise to display"
    exif[ExifTags.Base.ImageDescription] = "Patient Jane Doe, born 1950-01-01"
    exif[ExifTags.Base.Artist] = "Dr Smith, Eye Clinic"
    exif[ExifTags.Base.Make] = "FundusCam"
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (51.0, 30.0, 12.0),
        ExifTags.GPS.GPSLongitudeRef: "W",
        ExifTags.GPS.GPSLongitude: (0.0, 7.0, 39.0),
    }
    upload = _encode(_two_halves(60, 40), "JPEG", quality=95, exif=exif)
    with PILImage.open(io.BytesIO(upload)) as check:  # the upload really carries all of it
        assert check.getexif()[ExifTags.Base.Orientation] == 6
        assert check.getexif().get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
        assert b"Jane Doe" in upload

    with Session.begin() as session:
        result = ingest_image(session, upload, "IMG_0001.JPG", data_dir=data_dir)
    stored = (data_dir / result.image.path).read_bytes()
    for secret in (b"Jane Doe", b"Dr Smith", b"FundusCam", b"Exif", b"GPS"):
        assert secret not in stored
    with PILImage.open(io.BytesIO(stored)) as im:
        assert im.format == "PNG"
        assert len(im.getexif()) == 0
        assert not {"exif", "icc_profile", "dpi", "XML:com.adobe.xmp"} & set(im.info)
        # 60x40 landscape, rotated clockwise: 40x60 portrait with the red half on top.
        assert im.size == (40, 60) and (result.image.width, result.image.height) == (40, 60)
        top, bottom = np.asarray(im)[15, 20], np.asarray(im)[45, 20]
    assert np.abs(top.astype(int) - RED).max() < 30 and np.abs(bottom.astype(int) - BLUE).max() < 30


def test_sixteen_bit_greyscale_is_kept_exactly(Session: sessionmaker[Session], data_dir: Path):
    arr = (np.arange(32 * 24, dtype=np.uint16).reshape(24, 32) * 80).astype(np.uint16)
    with Session.begin() as session:
        result = ingest_image(session, _encode(PILImage.fromarray(arr), "PNG"), "scan.png", data_dir=data_dir)
    with PILImage.open(data_dir / result.image.path) as im:
        assert np.array_equal(np.asarray(im).astype(np.uint16), arr) and arr.max() > 255


def test_alpha_and_palette_images_become_rgb():
    rgba = PILImage.new("RGBA", (8, 8), (10, 20, 30, 128))
    assert prepare_image(_encode(rgba, "PNG"), "a.png").mode == "RGB"
    palette = _two_halves(8, 8).convert("P")
    assert prepare_image(_encode(palette, "PNG"), "p.png").mode == "RGB"
    tiff = prepare_image(_encode(_two_halves(8, 8), "TIFF"), "t.tiff")
    assert (tiff.mode, tiff.original_format) == ("RGB", "TIFF")


BOMBS = [
    (20_000, 20_000),  # over twice Pillow's limit: Pillow raises DecompressionBombError
    (10_000, 9_500),  # between Pillow's limit and twice that: Pillow only warns
    (9_000, 9_000),  # under Pillow's limit, over ours (80 MP)
]
NOT_PHOTOGRAPHS = [
    (b"%PDF-1.4\n1 0 obj <<>> endobj\n", "referral letter.pdf", "referral letter.pdf: not an image"),
    (b"", "empty.jpg", "empty.jpg: the file is empty"),
    (_encode(_two_halves(8, 8), "GIF"), "anim.gif", "anim.gif: GIF images are not accepted"),
    (_encode(_two_halves(400, 300), "JPEG")[:900], "cut.jpg", "cut.jpg: damaged or truncated"),
]


def test_decompression_bombs_and_non_images_are_refused_naming_the_client_file(Session, data_dir: Path):
    cases = [(_png_header_only(w, h), "bomb.png", "bomb.png: .*limit of 80 megapixels") for w, h in BOMBS]
    with Session.begin() as session:
        for data, name, message in cases + NOT_PHOTOGRAPHS:
            with pytest.raises(ValueError, match=f"^{message}"):
                ingest_image(session, data, name, data_dir=data_dir)
    assert _count_images(Session) == 0 and _stored_files(data_dir) == []


def test_the_stored_path_never_comes_from_the_client_name(Session, data_dir: Path):
    names = ["../../etc/passwd.jpg", "..\\..\\windows\\passwd.jpg", "/abs/passwd.jpg"]
    for n, name in enumerate(names):
        with Session.begin() as session:
            image = ingest_image(session, _encode(_two_halves(60 + n), "PNG"), name, data_dir=data_dir).image
        assert image.path == f"images/{image.sha256[:2]}/{image.sha256[2:]}.png"
        assert "passwd" not in image.path and ".." not in image.path
        assert (data_dir / image.path).resolve().is_relative_to(data_dir.resolve())
        assert image.original_filename == "passwd.jpg"
    assert not list(data_dir.parent.rglob("passwd*"))


def test_client_filename_keeps_only_a_displayable_final_component():
    assert client_filename("C:\\photos\\left eye.JPG") == "left eye.JPG"
    assert client_filename("a/b/\x00evil\n.png") == "evil.png"
    assert client_filename("") == client_filename(None) == "unnamed"


def test_rolled_back_upload_leaves_an_orphan_that_gc_removes(Session: sessionmaker[Session], data_dir: Path):
    with pytest.raises(RuntimeError), Session.begin() as session:
        ingest_image(session, _encode(_two_halves(), "PNG"), "a.png", data_dir=data_dir)
        raise RuntimeError("the request failed after the file was written")
    assert _count_images(Session) == 0 and len(_stored_files(data_dir)) == 1  # file first, row never
    with Session() as session:
        assert len(collect_garbage(session, data_dir)["images"].removed) == 0  # too young: maybe uncommitted
        assert len(collect_garbage(session, data_dir, min_age_s=0)["images"].removed) == 1
    assert _stored_files(data_dir) == []


def test_a_lost_file_is_restored_by_the_next_upload(Session: sessionmaker[Session], data_dir: Path):
    data = _encode(_two_halves(), "PNG")
    with Session.begin() as session:
        image = ingest_image(session, data, "a.png", data_dir=data_dir).image
    (data_dir / image.path).unlink()
    with Session.begin() as session:
        assert not ingest_image(session, data, "a.png", data_dir=data_dir).created
    assert sha256_hex(image_store(data_dir).get_bytes(image.sha256)) == image.sha256


def test_raw_dicom_bytes_are_refused_before_anything_is_stored():
    from _support_dicom import make_dicom

    from db.ingest import prepare_image

    with pytest.raises(ValueError, match=r"scan\.dcm: a DICOM file; it is stored only after de-identification"):
        prepare_image(make_dicom(), "scan.dcm")


def test_dicom_intake_keeps_only_eye_date_and_camera():
    from _support_dicom import make_dicom

    from feedback.intake import prepare_upload

    intake = prepare_upload(make_dicom(laterality="R", acquisition_date="20220202"), "Doe_John.dcm")
    assert intake.dicom and intake.eye == "right" and str(intake.acquisition_date) == "2022-02-02"
    assert intake.device_model == "Acme Optics FundusCam 3000"
    assert intake.filename == f"dicom-{intake.prepared.sha256[:12]}.png"  # the client's file name is not kept
    assert intake.prepared.png.startswith(b"\x89PNG")
