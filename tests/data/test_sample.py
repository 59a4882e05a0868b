import numpy as np
import pytest

from drgnet.data import Sample


def _img(h=8, w=10):
    return np.zeros((h, w, 3), np.uint8)


def test_sample_normalises_masks_and_exposes_known_lesions():
    masks = np.zeros((4, 8, 10), np.uint8)
    masks[1, 2, 3] = 255
    s = Sample(_img(), "a", "test", grade=2, masks=masks, lesion_known=(True, True, False, False))
    assert s.masks.max() == 1
    assert s.mask("HE")[2, 3] == 1
    assert s.mask("EX") is None
    assert s.has_masks


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"grade": 7}, "not an ICDR grade"),
        ({"masks": np.zeros((4, 9, 10), np.uint8)}, r"masks must be \(4, 8, 10\)"),
        ({"lesion_known": (True, False, False, False)}, "no masks"),
        ({"ignore": np.zeros((3, 3), bool)}, "ignore mask"),
    ],
)
def test_sample_rejects_inconsistent_labels(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Sample(_img(), "bad.png", "test", **kwargs)


def test_sample_rejects_non_rgb():
    with pytest.raises(ValueError, match="bad.png: image must be"):
        Sample(np.zeros((8, 10), np.uint8), "bad.png", "test")
