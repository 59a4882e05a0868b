"""Gradability: well-exposed, sharp photographs pass; blurred, dark, over-exposed and tiny ones are flagged."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from drgnet.data.preprocess import find_fov
from drgnet.data.quality import REASONS, QualityThresholds, assess_quality
from drgnet.data.synthetic import generate_fundus


def _quality(image, **thresholds):
    return assess_quality(image, find_fov(image), QualityThresholds(**thresholds))


def _blur(image, sigma_at_512):
    """Gaussian blur whose sigma is given in pixels of a 512 px field of view."""
    diameter = 2 * find_fov(image).radius
    return cv2.GaussianBlur(image, (0, 0), sigma_at_512 * diameter / 512)


def _exposure(image, factor):
    return np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photographs():
    synthetic = {
        f"{style} grade {grade}": generate_fundus(grade, size=512, seed=11, style=style, index=grade).image
        for style, grade in (("default", 0), ("clinic_b", 3), ("smartphone", 4))
    }
    return {"skimage retina": data.retina()[..., :3], **synthetic}


def test_well_exposed_sharp_photographs_are_gradable(photographs):
    for name, image in photographs.items():
        q = _quality(image)
        assert q.gradable, (name, q)
        assert q.reasons == () and q.fov_found
        assert 60 < q.brightness < 140 and q.sharpness > 12 and q.fov_diameter > 256, (name, q)
        assert q.clipped_dark < 0.01 and q.clipped_bright < 0.01


def test_blurred_photographs_are_out_of_focus(photographs):
    for name, image in photographs.items():
        sharp = _quality(image).sharpness
        q = _quality(_blur(image, 2.5))
        assert "out_of_focus" in q.reasons and not q.gradable, (name, q)
        assert q.sharpness < sharp / 2
        assert "too_dark" not in q.reasons and "too_bright" not in q.reasons  # blur does not move exposure


def test_darkened_photographs_are_too_dark_and_overexposed_ones_too_bright(photographs):
    for name, image in photographs.items():
        dark = _quality(_exposure(image, 0.2))
        assert "too_dark" in dark.reasons and "out_of_focus" not in dark.reasons, (name, dark)
        very_dark = _quality(_exposure(image, 0.1))
        assert "too_dark" in very_dark.reasons
        bright = _quality(_exposure(image, 3.0))
        assert "too_bright" in bright.reasons and not bright.gradable, (name, bright)


def test_clipping_small_fields_and_missing_fields_are_reported():
    image = generate_fundus(2, size=512, seed=3).image
    white = image.copy()
    fov = find_fov(image)
    white[fov.mask & (np.arange(512)[None, :] < 256)] = 255  # half the retina burnt out
    assert "clipped_bright" in _quality(white).reasons
    small = generate_fundus(2, size=160, seed=3).image
    q = _quality(small)
    assert q.reasons == ("low_resolution",) and q.fov_diameter < 256
    assert _quality(small, min_fov_diameter=100).gradable
    grey = np.full((200, 200, 3), 120, np.uint8)
    missing = assess_quality(grey, find_fov(grey, check_fundus=False))
    assert missing.reasons == ("no_field_of_view",) and not missing.fov_found
    assert set(REASONS) >= {"too_dark", "too_bright", "clipped_dark", "clipped_bright", "out_of_focus"}


def test_quality_row_values_are_json_ready():
    q = _quality(generate_fundus(0, size=512, seed=5).image)
    row = q.to_dict()
    assert row["gradable"] is True and row["quality_reasons"] is None
    assert all(isinstance(row[k], float) for k in ("brightness", "sharpness", "fov_diameter"))
