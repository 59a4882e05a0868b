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


# -------------------------------------------------------------------------------------- zoomed regions, photo coords

from webapp.masks import (  # noqa: E402
    ERASED,
    PAINTED,
    Edit,
    apply_edits,
    canvas_size,
    edit_from_canvas,
    region_box,
    strokes_full,
)

LAYERS = ("MA", "HE", "EX", "SE")


def test_region_box_stays_inside_the_photo():
    assert region_box(100, 80, 64, 400, 300) == (68, 48, 132, 112)
    assert region_box(5, 5, 64, 400, 300) == (0, 0, 64, 64)  # moved, not cut
    assert region_box(399, 299, 64, 400, 300) == (336, 236, 400, 300)
    assert region_box(10, 10, 1024, 400, 300) == (0, 0, 400, 300)  # larger than the photo: the whole photo


def test_canvas_size_is_a_whole_number_of_screen_pixels_per_photo_pixel():
    assert canvas_size((0, 0, 64, 64), 512) == (512, 512)  # 8 screen pixels per photo pixel
    assert canvas_size((10, 20, 110, 70), 512) == (500, 250)  # 5 per photo pixel
    assert canvas_size((0, 0, 4288, 2848), 512) == (512, 340)  # whole photo: scaled down


def test_a_three_pixel_stroke_on_a_zoomed_canvas_lands_on_those_photo_pixels():
    w, h = 4288, 2848
    box = region_box(2000, 1500, 64, w, h)
    cw, ch = canvas_size(box, 512)
    k = cw // 64
    add = np.zeros((ch, cw), bool)
    # A stroke one photo pixel wide over photo pixels (box x0 + 10 .. + 12, box y0 + 5), as the canvas draws it,
    # with anti-aliased fringes of less than half a photo pixel around it.
    add[5 * k : 6 * k, 10 * k : 13 * k] = True
    add[5 * k - 2 : 5 * k, 10 * k + 2 : 13 * k - 2] = True
    add[6 * k : 6 * k + 3, 10 * k : 13 * k] = True
    edit = edit_from_canvas("HE", box, add, np.zeros_like(add))
    assert edit.code.shape == (64, 64)
    full = strokes_full([edit], (h, w), LAYERS)
    painted, erased = full["HE"]
    expected = np.zeros((h, w), bool)
    expected[box[1] + 5, box[0] + 10 : box[0] + 13] = True
    assert np.array_equal(painted, expected) and not erased.any()
    corrected = merge_full(np.zeros((h, w), bool), painted, erased)
    assert np.argwhere(corrected).tolist() == [[box[1] + 5, box[0] + x] for x in (10, 11, 12)]


def test_whole_photo_canvas_scales_up_like_before():
    w, h = 1024, 768
    box = (0, 0, w, h)
    cw, ch = canvas_size(box, 512)
    add = np.zeros((ch, cw), bool)
    add[10, 20:30] = True
    edit = edit_from_canvas("MA", box, add, np.zeros_like(add))
    painted, _ = strokes_full([edit], (h, w), LAYERS)["MA"]
    expected = np.zeros((h, w), bool)
    expected[20:22, 40:60] = True
    assert np.array_equal(painted, expected)


def test_later_edits_win_and_untouched_layers_stay_out():
    w, h = 100, 80
    first = Edit("EX", (10, 10, 30, 30), np.full((20, 20), PAINTED, np.uint8))
    second = Edit("EX", (20, 20, 40, 40), np.full((20, 20), ERASED, np.uint8))
    out = strokes_full([first, second], (h, w), LAYERS)
    assert set(out) == {"EX"}
    add, remove = out["EX"]
    assert add[10:20, 10:30].all() and not add[20:30, 20:30].any()
    assert remove[20:40, 20:40].all() and not remove[10:20, 10:20].any()
    # The same edits drawn on a half-size view of the photo (the display overview).
    view = np.zeros((4, h // 2, w // 2), bool)
    apply_edits(view, [first, second], (0, 0, w, h), LAYERS)
    assert view[2, 5:10, 5:15].all() and not view[2, 10:20, 10:20].any()


def test_thin_strokes_stay_visible_on_the_overview():
    edit = Edit("MA", (0, 0, 400, 400), np.zeros((400, 400), np.uint8))
    edit.code[200, 100:103] = PAINTED  # one photo pixel high
    view = np.zeros((4, 100, 100), bool)
    apply_edits(view, [edit], (0, 0, 400, 400), LAYERS, keep_small=True)
    assert view[0, 50, 25]


def test_edit_survives_the_draft_round_trip():
    edit = Edit("SE", (3, 4, 13, 9), np.arange(50, dtype=np.uint8).reshape(5, 10) % 3)
    back = Edit.from_doc(edit.to_doc())
    assert back.layer == "SE" and back.box == (3, 4, 13, 9) and np.array_equal(back.code, edit.code)


def test_region_edit_drawn_into_a_zoomed_view():
    # The canvas background of a region shows every layer's edits at the region's scale.
    edit = Edit("HE", (50, 50, 52, 51), np.full((1, 2), PAINTED, np.uint8))
    view = np.zeros((4, 64 * 8, 64 * 8), bool)
    apply_edits(view, [edit], (40, 40, 104, 104), LAYERS)
    assert view[1].sum() == 2 * 64 and view[1, 80:88, 80:96].all()


def test_photo_point_maps_a_click_on_a_scaled_picture_to_the_photo_pixel():
    from webapp.masks import photo_point

    # A 4288 x 2848 photograph shown 536 px wide: one shown pixel covers 8 photo pixels.
    shown = {"width": 536, "height": 356}
    assert photo_point({**shown, "x": 0, "y": 0}, 4288, 2848) == (0, 0)
    assert photo_point({**shown, "x": 10.5, "y": 3}, 4288, 2848) == (84, 24)
    assert photo_point({**shown, "x": 536, "y": 356}, 4288, 2848) == (4287, 2847)  # the far edge stays inside
    assert photo_point({**shown, "x": -3, "y": 400}, 4288, 2848) == (0, 2847)
    assert photo_point({"x": 1, "y": 1}, 4288, 2848) is None  # no picture size: not a click of ours
    assert photo_point({"x": 1, "y": 1, "width": 0, "height": 5}, 4288, 2848) is None
