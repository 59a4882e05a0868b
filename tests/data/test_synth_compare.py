"""``drgnet synth-compare``: real photographs beside ours, lesion crops of the real originals at full resolution.

The "real" photographs here are small synthetic stand-ins laid out where ``real_samples`` looks (IDRiD's folder
layout with masks, the sdists' samples folder), so the tests run anywhere and fast.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from drgnet.cli import app
from drgnet.data import _synth_compare as sc
from drgnet.data import preprocess, real_samples
from drgnet.data.synthetic import generate_fundus
from drgnet.labels import LESIONS

_IDRID_DIRS = ("1. Microaneurysms", "2. Haemorrhages", "3. Hard Exudates", "4. Soft Exudates")
PHOTO = 192  # side of the stand-in "real" photographs
CROP = 16
TILE = 64


def _idrid(shared: Path, count: int) -> Path:
    """IDRiD's segmentation layout with ``count`` photographs (grade 3 stand-ins) and their lesion masks."""
    root = shared / "data" / "idrid-train4" / "A. Segmentation"
    images = root / "1. Original Images" / "a. Training Set"
    truth = root / "2. All Segmentation Groundtruths" / "a. Training Set"
    images.mkdir(parents=True)
    for i in range(count):
        f = generate_fundus(3, size=PHOTO, seed=7, index=i)
        cv2.imwrite(str(images / f"IDRiD_0{i + 1}.jpg"), f.image[..., ::-1])
        for k, (code, folder) in enumerate(zip(LESIONS, _IDRID_DIRS, strict=True)):
            (truth / folder).mkdir(parents=True, exist_ok=True)
            if f.masks[k].any():
                Image.fromarray(f.masks[k] * 255).save(truth / folder / f"IDRiD_0{i + 1}_{code}.tif")
    return shared / "data" / "idrid-train4"


def _sample(samples: Path, stem: str) -> Path:
    folder = samples / "retinalysis_inference-0.9.0" / "samples" / "fundus" / "original"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.png"
    cv2.imwrite(str(path), generate_fundus(0, size=PHOTO, seed=9, style="clinic_b").image[..., ::-1])
    return path


@pytest.fixture
def real_dirs(tmp_path, monkeypatch):
    """Empty stand-in sources: no IDRiD, no samples, no scikit-image retina; tests add what they need."""
    monkeypatch.setenv("DRGNET_SHARED_DIR", str(tmp_path / "shared"))
    monkeypatch.setenv("DRGNET_SAMPLES_DIR", str(tmp_path / "samples"))
    monkeypatch.setattr(real_samples, "skimage_retina", lambda: None)
    (tmp_path / "shared").mkdir()
    return tmp_path


def test_sheets_have_the_expected_grid_and_the_readme_names_every_photograph(real_dirs):
    _idrid(real_dirs / "shared", 2)
    _sample(real_dirs / "samples", "DRIVE_22")
    out = real_dirs / "out"
    result = sc.write_comparison(out, n=2, size=128, generators=("v2",), tile=TILE, crop=CROP)

    assert [name for name, _ in result.used] == ["idrid:IDRiD_01", "idrid:IDRiD_02", "sample:DRIVE_22"]
    # 3 real photographs at 2 a row, then one row of ours.
    photos = cv2.imread(str(result.photographs))
    assert photos.shape == (sc.HEADER + 3 * TILE + 2 * sc.GAP, 2 * TILE + sc.GAP, 3)
    # Per lesion kind: a real row and a v2 row, then both again outlined.
    cell = CROP * sc.ZOOM
    lesions = cv2.imread(str(result.lesions))
    rows = len(LESIONS) * 2 * 2
    assert lesions.shape == (sc.HEADER + rows * cell + (rows - 1) * sc.GAP, 2 * cell + sc.GAP, 3)

    readme = result.readme.read_text(encoding="utf-8")
    assert sc.WARNING in readme
    assert "CC BY 4.0" in readme and "Porwal" in readme
    assert "`sample:DRIVE_22`" in readme and "DRIVE research dataset" in readme
    assert "scikit-image" in readme  # listed as missing
    assert (out / ".gitignore").read_text().splitlines()[-1] == "*"


def test_real_lesion_crops_are_original_pixels_centred_on_a_component(real_dirs):
    idrid = _idrid(real_dirs / "shared", 2)
    crops, share = sc.real_lesion_crops(idrid, k=3, crop=CROP, seed=0)

    originals = {}
    for path in sorted(idrid.rglob("*.jpg")):
        originals[path.stem] = preprocess.load_rgb(path)
    diameters = [2 * preprocess.find_fov(im).radius for im in originals.values()]
    assert share == pytest.approx(CROP / np.mean(diameters))
    seen = 0
    for lesion in LESIONS:
        for crop in crops[lesion]:
            seen += 1
            y0, x0, y1, x1 = crop.box
            assert crop.image.shape == (CROP, CROP, 3) and (y1 - y0, x1 - x0) == (CROP, CROP)
            assert crop.centre == (y0 + CROP // 2, x0 + CROP // 2)
            # The crop's centre pixel is a lesion pixel of the original mask ...
            assert crop.mask[CROP // 2, CROP // 2]
            mask = np.asarray(Image.open(next(idrid.rglob(f"{crop.source}_{lesion}.tif")))) > 0
            assert mask[crop.centre]
            # ... and every pixel of the crop is the original's own pixel: no resizing.
            original = originals[crop.source]
            inside = (slice(max(y0, 0), min(y1, original.shape[0])), slice(max(x0, 0), min(x1, original.shape[1])))
            np.testing.assert_array_equal(
                crop.image[inside[0].start - y0 : inside[0].stop - y0, inside[1].start - x0 : inside[1].stop - x0],
                original[inside],
            )
    assert seen >= 4
    # The same seed picks the same lesions.
    again, _ = sc.real_lesion_crops(idrid, k=3, crop=CROP, seed=0)
    assert [c.centre for c in again["EX"]] == [c.centre for c in crops["EX"]]


def test_pick_typical_prefers_median_sized_components_and_keeps_them_apart():
    # (photo, area, cy, cx): eight of area 10 or 11 (the median), and outliers, which never come first.
    typical = [(p, 10 + p % 2, 50, 50) for p in range(8)]
    candidates = [(8, 1, 5, 5), *typical[:4], (9, 900, 9, 9), (10, 2, 7, 7), *typical[4:]]
    picks = set()
    for seed in range(6):
        picked = sc.pick_typical(candidates, 2, spacing=8, rng=np.random.default_rng(seed))
        assert len(picked) == 2 and all(p in typical for p in picked)
        picks.add(tuple(picked))
    assert len(picks) > 1  # the seed chooses among the typical ones
    assert sc.pick_typical(candidates, 3, 8, np.random.default_rng(1)) == sc.pick_typical(
        candidates, 3, 8, np.random.default_rng(1)
    )
    # Never two of one photograph closer than the spacing, while another photograph has one.
    close = [(0, 10, 50, 50), (0, 10, 52, 52), (1, 10, 50, 50)]
    for seed in range(4):
        assert (1, 10, 50, 50) in sc.pick_typical(close, 2, spacing=8, rng=np.random.default_rng(seed))
    assert len(sc.pick_typical(close[:2], 2, spacing=8, rng=np.random.default_rng(0))) == 1
    assert sc.pick_typical([], 3, 8, np.random.default_rng(0)) == []


def test_components_centre_lies_on_the_component_and_cut_pads_beyond_the_edge():
    mask = np.zeros((20, 20), np.uint8)
    mask[2:5, 2:5] = 1
    # A ring: its centroid is a hole, the centre must still be a lesion pixel.
    cv2.circle(mask, (13, 13), 4, 1, 1)
    found = sorted(sc.components(mask))
    assert [a for a, _, _ in found] == sorted([9, int(((mask > 0).sum()) - 9)])
    assert all(mask[cy, cx] for _, cy, cx in found)
    a = np.arange(25, dtype=np.uint8).reshape(5, 5)
    out, box = sc.cut(a, 0, 0, 4)
    assert box == (-2, -2, 2, 2)
    assert (out[:2] == 0).all() and (out[:, :2] == 0).all()
    np.testing.assert_array_equal(out[2:, 2:], a[:2, :2])


def test_enlarge_is_a_whole_nearest_neighbour_factor():
    crop = np.random.default_rng(0).integers(0, 255, (7, 7, 3), dtype=np.uint8)
    big, zoom = sc.enlarge(crop, 30)
    assert zoom == 4 and big.shape == (28, 28, 3)
    np.testing.assert_array_equal(big[::zoom, ::zoom], crop)
    np.testing.assert_array_equal(big[zoom - 1 :: zoom, zoom - 1 :: zoom], crop)


def test_without_idrid_the_photographs_sheet_is_written_and_idrid_named_missing(real_dirs):
    _sample(real_dirs / "samples", "HRF_04_g")
    result = sc.write_comparison(real_dirs / "out", n=1, size=96, generators=("v2",), tile=TILE)
    assert result.lesions is None and not (real_dirs / "out" / "lesions.png").exists()
    assert any("IDRiD" in m for m in result.missing)
    assert cv2.imread(str(result.photographs)).shape == (sc.HEADER + 2 * TILE + sc.GAP, TILE, 3)


def test_no_real_photograph_and_unknown_generator_are_clear_errors(real_dirs):
    with pytest.raises(ValueError, match="no real photograph on this machine.*IDRiD.*fetch_real_samples"):
        sc.write_comparison(real_dirs / "out", n=2, size=96)
    assert not (real_dirs / "out").exists()
    _sample(real_dirs / "samples", "DRIVE_22")
    with pytest.raises(ValueError, match="unknown generator v9; choose from v2, v1"):
        sc.write_comparison(real_dirs / "out", n=2, size=96, generators=("v2", "v9"))
    result = CliRunner().invoke(app, ["synth-compare", "--out", str(real_dirs / "o"), "--generators", "v3"])
    assert result.exit_code == 2 and "unknown generator v3" in result.output


def test_cli_writes_the_sheets_and_warns(real_dirs):
    _sample(real_dirs / "samples", "DRIVE_40")
    out = real_dirs / "cli"
    result = CliRunner().invoke(app, ["synth-compare", "--out", str(out), "--n", "1", "--size", "96"])
    assert result.exit_code == 0, result.output
    assert "real: sample:DRIVE_40" in result.output and "no lesions.png" in result.output
    assert "Never commit" in result.output
    assert (out / "photographs.png").is_file() and (out / "README.md").is_file()


def test_synthetic_rows_spread_grades_and_take_camera_styles_in_turn():
    plan = sc.synthetic_plan(6)
    assert [g for g, _ in plan] == [0, 1, 2, 2, 3, 4]
    assert [s for _, s in plan][:4] == ["default", "clinic_a", "clinic_b", "smartphone"]
    assert sc.synthetic_plan(1) == [(3, "default")]


def test_synthetic_crops_cover_the_same_share_of_the_field_of_view():
    photos = [generate_fundus(3, size=256, seed=2, index=i) for i in range(2)]
    crops = sc.synthetic_lesion_crops(photos, "v2", k=2, share=0.05, seed=0)
    diameter = {f"v2 {f.name}": 2 * preprocess.find_fov(f.image).radius for f in photos}
    assert crops["EX"] and crops["HE"]
    for crop in crops["EX"] + crops["HE"]:
        assert crop.image.shape[0] == round(0.05 * diameter[crop.source])
        assert crop.mask[crop.image.shape[0] // 2, crop.image.shape[0] // 2]
