"""DICOM photographs: colour spaces, kept attributes, refusals, de-identification, and the real camera sample."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from _support_dicom import IDENTIFYING, make_dicom
from PIL import Image

from drgnet.data import dicom
from drgnet.data.preprocess import load_rgb
from drgnet.data.real_samples import samples_dir
from drgnet.data.synthetic import generate_fundus


@pytest.fixture(scope="module")
def fundus() -> np.ndarray:
    return np.array(Image.open(io.BytesIO(generate_fundus(2, 96, 3).jpeg)))


@pytest.mark.parametrize(
    "photometric, tolerance", [("RGB", 0), ("YBR_FULL", 1.0), ("YBR_FULL_422", 4.0), ("PALETTE COLOR", 6.0)]
)
def test_colour_spaces_decode_to_the_same_rgb(fundus, photometric, tolerance):
    photo = dicom.read_dicom(make_dicom(fundus, photometric=photometric), "eye.dcm")
    assert photo.pixels.shape == fundus.shape and photo.pixels.dtype == np.uint8
    assert np.abs(photo.pixels.astype(int) - fundus).mean() <= tolerance
    assert photo.photometric == photometric


def test_grey_photographs_decode(fundus):
    photo = dicom.read_dicom(make_dicom(fundus, photometric="MONOCHROME2"), "eye.dcm")
    assert photo.pixels.shape == fundus.shape[:2]
    assert (photo.pixels == fundus[..., 1]).all()


def test_kept_attributes_laterality_date_and_camera(fundus):
    photo = dicom.read_dicom(make_dicom(fundus, laterality="R", acquisition_date="20230117"), "eye.dcm")
    assert photo.kept() == {
        "eye": "right",
        "acquisition_date": "2023-01-17",
        "manufacturer": "Acme Optics",
        "device_model": "FundusCam 3000",
    }
    # The series' Laterality stands in when the image's own is absent; "B" (both) means no single eye.
    assert dicom.read_dicom(make_dicom(fundus, laterality=None, series_laterality="L"), "e.dcm").eye == "left"
    assert dicom.read_dicom(make_dicom(fundus, laterality="B"), "e.dcm").eye is None


def test_multi_frame_is_refused_with_a_reason(fundus):
    with pytest.raises(ValueError, match=r"multi\.dcm: multi-frame DICOM \(3 frames\)"):
        dicom.read_dicom(make_dicom(fundus, frames=3), "multi.dcm")


def test_burned_in_annotation_and_non_images_are_refused(fundus):
    with pytest.raises(ValueError, match="burned-in annotation"):
        dicom.read_dicom(make_dicom(fundus, burned_in="YES"), "b.dcm")
    with pytest.raises(ValueError, match="junk.dcm: a DICOM file without pixel data"):
        dicom.read_dicom(b"\0" * 128 + b"DICM" + b"\x02\x00", "junk.dcm")
    with pytest.raises(ValueError, match="notes.dcm: not a readable DICOM file"):
        dicom.read_dicom(b"plain text, not DICOM at all", "notes.dcm")
    with pytest.raises(ValueError, match="over the limit"):
        dicom.read_dicom(make_dicom(fundus), "big.dcm", max_pixels=1000)


def test_deidentify_removes_every_identifying_value(fundus):
    ds = pydicom.dcmread(io.BytesIO(make_dicom(fundus)))
    dicom.deidentify(ds)
    out = io.BytesIO()
    ds.save_as(out)
    text = out.getvalue().decode("latin-1").lower()
    for value in IDENTIFYING:
        assert value.lower() not in text, value
    assert str(ds.PatientIdentityRemoved) == "YES"


def test_load_rgb_reads_dicom_for_predict_and_screen(fundus, tmp_path):
    path = tmp_path / "photo.dcm"
    path.write_bytes(make_dicom(fundus, photometric="YBR_FULL_422"))
    assert load_rgb(path).shape == fundus.shape
    with pytest.raises(ValueError, match="multi-frame"):
        load_rgb(io.BytesIO(make_dicom(fundus, frames=2)))


def test_the_real_camera_dicom_decodes():
    path = samples_dir() / "retinalysis_fundusprep-1.1.0" / "samples" / "original" / "issue_3.dcm"
    if not path.is_file():
        pytest.skip(f"{path} absent: run scripts/fetch_real_samples.sh (or set DRGNET_SAMPLES_DIR)")
    photo = dicom.read_dicom(path.read_bytes(), path.name)
    assert photo.pixels.shape == (2136, 3216, 3)
    assert photo.kept() == {
        "eye": "right",
        "acquisition_date": "2011-08-24",
        "manufacturer": photo.manufacturer,
        "device_model": "IMAGEnet i-base",
    }


@pytest.mark.parametrize("syntax", ["JPEG2000Lossless", "RLELossless"])
def test_compressed_transfer_syntaxes_decode(fundus, syntax):
    """JPEG 2000 through pylibjpeg-openjpeg, RLE through pydicom (JPEG baseline: the YBR_FULL_422 case above)."""
    import pydicom.uid

    ds = pydicom.dcmread(io.BytesIO(make_dicom(fundus)))
    ds.compress(getattr(pydicom.uid, syntax))
    buf = io.BytesIO()
    ds.save_as(buf)
    photo = dicom.read_dicom(buf.getvalue(), "c.dcm")
    assert photo.transfer_syntax == getattr(pydicom.uid, syntax)
    assert (photo.pixels == fundus).all()
