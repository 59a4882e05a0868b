import numpy as np
import pytest

from webapp.masks import ERASE_RGB, PAINT_RGB, merge_full, scale_mask, strokes_from_canvas


def test_merge_full_adds_and_removes_and_erase_wins():
    pred = np.zeros((4, 4), bool)
    pred[0, :] = True
    add = np.zeros((4, 4), bool)
    add[2, 2] = add[0, 1] = True
    remove = np.zeros((4, 4), bool)
    remove[0, 0] = remove[0, 1] = True
    out = merge_full(pred, add, remove)
    expected = pred.copy()
    expected[2, 2] = True
    expected[0, 0] = expected[0, 1] = False  # erased, even where also painted
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == bool and pred[0, 0]  # the input is not changed


def test_merge_full_without_strokes_is_the_prediction():
    pred = np.eye(5, dtype=np.uint8)
    np.testing.assert_array_equal(merge_full(pred), pred.astype(bool))


def test_canvas_strokes_scale_to_full_resolution():
    # A 512-wide canvas over a 1024x768 photograph: canvas pixel (x, y) covers photo pixels (2x..2x+1, 2y..2y+1).
    pred = np.zeros((768, 1024), bool)
    add = np.zeros((384, 512), bool)
    add[100, 200] = True
    remove = np.zeros((384, 512), bool)
    out = merge_full(pred, add, remove)
    assert out.shape == (768, 1024)
    ys, xs = np.nonzero(out)
    assert set(ys) == {200, 201} and set(xs) == {400, 401}


def test_downscaling_keeps_strokes_binary():
    small = scale_mask(np.ones((10, 10), bool), (3, 3))
    assert small.dtype == bool and small.all()
    with pytest.raises(ValueError, match="stroke mask"):
        scale_mask(np.ones((2, 2, 2)), (4, 4))


def test_strokes_from_canvas_splits_paint_and_erase():
    rgba = np.zeros((6, 6, 4), np.uint8)
    rgba[1, 1] = (*PAINT_RGB, 255)
    rgba[2, 2] = (*ERASE_RGB, 255)
    rgba[3, 3] = (*PAINT_RGB, 40)  # a faint antialiased edge does not count
    add, remove = strokes_from_canvas(rgba)
    assert add[1, 1] and not add[2, 2] and not add[3, 3]
    assert remove[2, 2] and not remove[1, 1]
    assert strokes_from_canvas(np.zeros((6, 6, 4), np.uint8)) is None
    assert strokes_from_canvas(None) is None
