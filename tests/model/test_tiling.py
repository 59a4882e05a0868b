"""Tiled lesion maps: tiles cover the picture, blend without seams and agree with an untiled pass."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from drgnet.data.synthetic import generate_fundus
from drgnet.engines import EngineOutput
from drgnet.inference import PhotoInput, Predictor, engine_maps
from drgnet.model import DRGNet
from drgnet.tiling import TileGrid, blend_window, flip_averaged, lesion_side, tile_starts, tiled_maps

TILE = 64


def box_filter(size: int):
    """A translation-equivariant "model": each channel's local mean of the green channel, zero-padded."""

    def run(tiles: np.ndarray) -> np.ndarray:
        green = tiles[..., 1].astype(np.float32) / 255.0
        out = [cv2.boxFilter(g, -1, (size, size), borderType=cv2.BORDER_CONSTANT) for g in green]
        return np.stack(out)[:, None]

    return run


def bright_spot_detector(tiles: np.ndarray) -> np.ndarray:
    """A deterministic lesion "model": 1 where the 5x5 mean green is above 200 (a bright exudate-like spot).
    It pads with zeros as a network does, so a spot cut by a tile's edge fades there: only blending with a
    neighbour that sees that part well inside itself keeps the spot whole."""
    return (box_filter(5)(tiles) > 200 / 255).astype(np.float32)


def test_tiles_cover_the_side_evenly_with_at_least_the_overlap():
    for side in (64, 100, 160, 1024, 1030):
        starts = tile_starts(side, TILE, 0.25)
        assert starts[0] == 0 and starts[-1] + TILE == max(side, TILE)
        steps = np.diff(starts)
        assert (steps <= TILE * 0.75).all() and (steps > 0).all()
        assert steps.max() - steps.min() <= 1 if len(steps) else True
    assert tile_starts(40, TILE) == [0]
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(100, TILE, 1.0)


def test_window_is_one_inside_and_falls_smoothly_to_the_edges():
    w = blend_window(TILE, 16)
    assert w.shape == (TILE, TILE) and w[16:-16, 16:-16].min() == 1.0
    assert 0 < w[0, 0] < 1e-2 and np.allclose(w, w.T) and np.allclose(w, w[::-1, ::-1])
    assert (np.diff(w[TILE // 2, : TILE // 2]) >= 0).all()


@pytest.mark.parametrize("side", [TILE, 40])
def test_one_tile_covering_the_picture_gives_the_untiled_maps_exactly(side):
    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    run = box_filter(7)
    padded = np.zeros((TILE, TILE, 3), np.uint8)
    padded[:side, :side] = image
    np.testing.assert_array_equal(tiled_maps(image, run, TILE), run(padded[None])[0][:, :side, :side])


def test_blending_reproduces_a_translation_equivariant_model_where_naive_tiling_does_not():
    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.integers(0, 256, (192, 192, 3), dtype=np.uint8), (0, 0), 3)
    run = box_filter(9)
    whole = run(image[None])[0]
    blended = tiled_maps(image, run, TILE, overlap=0.25)
    naive = tiled_maps(image, run, TILE, overlap=0.0)  # 192 = 3 x 64: side by side, no overlap
    inner = (slice(None), slice(4, -4), slice(4, -4))  # the picture's own border is zero-padded in both
    blended_err = np.abs(blended - whole)[inner].max()
    naive_err = np.abs(naive - whole)[inner].max()
    assert blended_err < 0.02, blended_err
    assert naive_err > 5 * blended_err, (naive_err, blended_err)


def test_no_seam_on_a_constant_picture():
    image = np.full((200, 200, 3), 150, np.uint8)
    run = box_filter(9)  # its zero padding darkens every tile's rim: what must not show
    blended = tiled_maps(image, run, TILE, overlap=0.25)[0]
    assert np.abs(np.diff(blended[8:-8, 8:-8], axis=1)).max() < 1e-3
    assert np.abs(np.diff(blended[8:-8, 8:-8], axis=0)).max() < 1e-3
    assert abs(blended[100, 100] - 150 / 255) < 1e-3
    naive = tiled_maps(np.full((192, 192, 3), 150, np.uint8), run, TILE, overlap=0.0)[0]
    assert np.abs(np.diff(naive[8:-8, 8:-8], axis=1)).max() > 0.05  # the step the window removes


def test_a_lesion_across_a_tile_border_is_found_whole():
    image = np.full((192, 192, 3), 100, np.uint8)
    cv2.circle(image, (TILE, 96), 6, (250, 250, 250), -1)  # across the border of the first two side-by-side tiles
    whole = bright_spot_detector(image[None])[0, 0] >= 0.5
    tiled = tiled_maps(image, bright_spot_detector, TILE, overlap=0.25)[0] >= 0.5
    assert cv2.connectedComponents(tiled.astype(np.uint8))[0] == 2  # background + one lesion, not two halves
    assert (tiled == whole).all() and whole.sum() > 60
    naive = tiled_maps(image, bright_spot_detector, TILE, overlap=0.0)[0] >= 0.5  # tiles at 0, 64, 128
    assert cv2.connectedComponents(naive.astype(np.uint8))[0] == 3  # what it guards against: cut in two


def test_tiles_outside_the_field_of_view_are_not_run():
    side = 256
    fov = np.zeros((side, side), bool)
    cv2.circle(fov.view(np.uint8), (128, 128), 80, 1, -1)  # the corner tiles lie outside
    full = TileGrid.plan(side, TILE, 0.25)
    inside = TileGrid.plan(side, TILE, 0.25, fov)
    assert len(inside) < len(full)
    calls = []

    def run(tiles):
        calls.append(len(tiles))
        return np.ones((len(tiles), 1, TILE, TILE), np.float32)

    maps = tiled_maps(np.zeros((side, side, 3), np.uint8), run, TILE, fov_mask=fov, batch_size=4)
    assert sum(calls) == len(inside) and max(calls) <= 4
    assert maps[0][fov].min() == 1.0  # every field-of-view pixel is covered by a tile that ran


class SpotEngine:
    """An engine whose "lesion" is a pure blue mark (no fundus has one): tests the geometry of the tiled path."""

    name = "spot"
    model_version = "spot-1"

    def __init__(self, lesion_fov_px: int) -> None:
        self.input_size = TILE
        self.lesion_fov_px = lesion_fov_px
        self.batches: list[int] = []

    def __call__(self, images: np.ndarray) -> EngineOutput:
        self.batches.append(len(images))
        blue = (images[..., 2] > 200) & (images[..., 0] < 60)
        logits = np.where(blue, 10.0, -10.0).astype(np.float32)[:, None].repeat(4, axis=1)
        n = len(images)
        return EngineOutput(np.zeros((n, 5), np.float32), logits, np.ones((n, 1, 2, 2), np.float32))


def _photo_with_blue_spot(centre: tuple[int, int], radius: int) -> np.ndarray:
    rgb = generate_fundus(0, size=400, seed=3).image.copy()
    cv2.circle(rgb, centre, radius, (0, 0, 255), -1)
    return rgb


def test_predictor_finds_a_small_lesion_at_its_place_in_the_photograph_through_tiles():
    centre, radius = (231, 187), 4
    rgb = _photo_with_blue_spot(centre, radius)
    engine = SpotEngine(lesion_fov_px=256)
    pred = Predictor(engine).predict(rgb)
    assert len(engine.batches) > 1 or engine.batches[0] > 1  # the global view and tiles
    mask = pred.lesion_probs[0] >= 0.5
    assert mask.shape == rgb.shape[:2]
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    assert n == 2
    assert np.abs(centroids[1] - np.array(centre)).max() < 1.5
    assert 0.6 < stats[1, cv2.CC_STAT_AREA] / (np.pi * radius**2) < 1.6
    assert pred.lesions["MA"].count == 1
    # At the 64 px global view the 8 px spot is about one pixel blended with the retina: the old path loses it.
    untiled = Predictor(SpotEngine(lesion_fov_px=0)).predict(rgb)
    assert (untiled.lesion_probs[0] >= 0.5).sum() < 0.5 * mask.sum()


def test_lesion_view_is_never_finer_than_the_photograph():
    engine = SpotEngine(lesion_fov_px=4096)
    pre, _ = Predictor(engine).prepare(generate_fundus(0, size=200, seed=1).image)
    assert pre.lesion is not None and pre.lesion.size == pre.box[2] - pre.box[0]
    assert lesion_side(pre, 64) == 0  # no larger than the global view: the global view serves


def test_tiny_drgnet_predicts_through_tiles_end_to_end(tiny_config):
    torch.manual_seed(0)
    assert tiny_config.input_size == TILE
    model = DRGNet(dataclasses.replace(tiny_config, lesion_fov_px=1024)).eval()
    rgb = generate_fundus(2, size=160, seed=2).image
    no_crops = DRGNet(dataclasses.replace(tiny_config, lesion_fov_px=0))
    assert Predictor(no_crops).lesion_fov_px == 0  # no crops learned
    tiled = Predictor(model).predict(rgb)
    untiled = Predictor(model, lesion_fov_px=0).predict(rgb)
    assert tiled.lesion_probs.shape == untiled.lesion_probs.shape == (4, 160, 160)
    np.testing.assert_allclose(tiled.probs, untiled.probs, atol=1e-6)  # the grade: the same global view
    assert np.isfinite(tiled.lesion_probs).all() and 0 <= tiled.lesion_probs.min() <= tiled.lesion_probs.max() <= 1
    assert not np.allclose(tiled.lesion_probs, untiled.lesion_probs)  # the maps come from the lesion view


@pytest.mark.parametrize("frame", [(300, 420), (420, 300), (250, 300)])
def test_maps_drawn_on_the_photograph_match_the_warped_maps_inside_the_field_of_view(frame):
    from drgnet.data.preprocess import preprocess
    from drgnet.tiling import draw_on_photograph, lesion_view

    fundus = generate_fundus(0, size=300, seed=4).image
    photo = np.zeros((*frame, 3), np.uint8)  # wider, taller, or cutting the field of view at top and bottom
    (h, w), y, x = frame, (frame[0] - 300) // 2, (frame[1] - 300) // 2
    photo[max(y, 0) : max(y, 0) + min(h, 300), max(x, 0) : max(x, 0) + min(w, 300)] = fundus[
        max(-y, 0) : max(-y, 0) + min(h, 300), max(-x, 0) : max(-x, 0) + min(w, 300)
    ]
    pre = preprocess(photo, TILE)
    view = lesion_view(pre, photo, 160)
    maps = np.random.default_rng(0).random((4, 160, 160), dtype=np.float32)
    fov = pre.fov.mask
    drawn = draw_on_photograph(view, maps, fov)
    warped = view.unproject_mask(maps) * fov[None]
    assert drawn.shape == warped.shape == (4, *frame) and drawn.dtype == np.float32
    np.testing.assert_allclose(drawn, warped, atol=1e-5)


def test_screening_scores_through_the_same_tiled_path(tmp_path):
    from drgnet.screening import ScreenOptions, prepare_item, score_batch

    centre, radius = (231, 187), 4
    path = tmp_path / "spot.png"
    cv2.imwrite(str(path), cv2.cvtColor(_photo_with_blue_spot(centre, radius), cv2.COLOR_RGB2BGR))
    rows = {}
    for side in (0, 256):
        engine = SpotEngine(lesion_fov_px=side)
        item = prepare_item(str(path), TILE, keep_original=True, lesion_fov_px=engine.lesion_fov_px)
        assert (item.lesion is None) == (side == 0)
        (rows[side],) = score_batch([item], engine, ScreenOptions())
    assert rows[256]["MA_count"] == 1 and rows[0]["MA_count"] == 0  # the 64 px global view loses the 8 px spot
    assert rows[256]["grade"] == rows[0]["grade"]  # the grade comes from the same global view
    expected = np.pi * radius**2 / (np.pi * (200 * 0.98) ** 2)  # the spot over the 400 px photograph's disc
    assert 0.5 < rows[256]["MA_area_fraction"] / expected < 2.0


def shifted_green(tiles: np.ndarray) -> np.ndarray:
    """A "model" that is not flip-equivariant: the green channel moved 3 px right and 2 px down."""
    green = tiles[..., 1].astype(np.float32) / 255.0
    return np.roll(green, (2, 3), axis=(1, 2))[:, None]


@pytest.mark.parametrize(("tta", "axes"), [("hflip", [(2,)]), ("flips", [(2,), (1,), (1, 2)])])
def test_flip_averaging_makes_a_tile_model_equivariant_to_its_flips(tta, axes):
    tiles = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    averaged = flip_averaged(shifted_green, tta)
    for ax in axes:
        mirrored = np.ascontiguousarray(np.flip(tiles, ax))
        back = np.flip(averaged(mirrored), tuple(a + 1 for a in ax))
        np.testing.assert_allclose(back, averaged(tiles), atol=1e-6)
        # The plain model is not: the test would catch an averaging that forgot to undo a flip.
        assert not np.allclose(np.flip(shifted_green(mirrored), tuple(a + 1 for a in ax)), shifted_green(tiles))
    assert flip_averaged(shifted_green, "none") is shifted_green
    with pytest.raises(ValueError, match="unknown test-time augmentation 'rot90'.*none, hflip, flips"):
        flip_averaged(shifted_green, "rot90")


def test_predictor_tta_averages_the_flipped_lesion_maps_and_keeps_the_grade(tiny_config):
    torch.manual_seed(0)
    model = DRGNet(dataclasses.replace(tiny_config, lesion_fov_px=1024)).eval()
    with torch.no_grad():  # an untrained head's maps are nearly flat: make them vary, as a trained one's do
        for name, p in model.lesion_head.named_parameters():
            p.mul_(20.0) if name.endswith("weight") else p.zero_()
    rgb = generate_fundus(2, size=160, seed=2).image
    plain, flipped = Predictor(model), Predictor(model, tta="hflip")
    pre, _ = flipped.prepare(rgb)
    assert pre.lesion is not None and pre.lesion.size > TILE  # tiled

    def run(tiles: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float().div(255.0)
            return torch.sigmoid(model(x).lesion_logits).numpy()

    (maps,) = engine_maps(flipped.engine, [PhotoInput(pre.image, pre.lesion)], tta="hflip")
    expected = tiled_maps(pre.lesion.image, flip_averaged(run, "hflip"), TILE, fov_mask=pre.lesion.fov_mask)
    np.testing.assert_allclose(maps.lesion_probs, expected, atol=1e-5)  # the product's TTA is the bench's
    (no_tta,) = engine_maps(plain.engine, [PhotoInput(pre.image, pre.lesion)])
    assert np.abs(maps.lesion_probs - no_tta.lesion_probs).max() > 0.01
    a, b = plain.predict(rgb), flipped.predict(rgb)
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)  # the grade comes from the unflipped global view
    assert np.abs(a.lesion_probs - b.lesion_probs).max() > 0.01
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        Predictor(model, tta="sideways")
