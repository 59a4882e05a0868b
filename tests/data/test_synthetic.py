"""The synthetic fundus generator: determinism, grade rules, exact masks, camera styles, cohort layout."""

from __future__ import annotations

import csv
import dataclasses
import json

import cv2
import numpy as np
import pytest
from scipy import ndimage

from drgnet.data import _synth_cohort, _synth_fundus, synthetic
from drgnet.data.synthetic import (
    FINDINGS,
    GRADES_CSV,
    GRADES_CSV_HEADER,
    IMAGE_DIR,
    LESION_DIRS,
    MANIFEST,
    STYLES,
    generate_cohort,
    generate_fundus,
    mask_path,
    write_preview,
)
from drgnet.labels import LESIONS

SIZE = 160
PROLIFERATIVE = {"nvd", "nve", "preretinal_haemorrhage"}
SEVERE_VASCULAR = {"venous_beading", "irma"}


def _lesions_present(f) -> set[str]:
    return {les for k, les in enumerate(LESIONS) if f.masks[k].any()}


def test_same_seed_and_index_give_identical_photographs():
    a = generate_fundus(3, size=SIZE, seed=7, index=2)
    b = generate_fundus(3, size=SIZE, seed=7, index=2)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.jpeg == b.jpeg
    assert np.array_equal(a.masks, b.masks)
    assert a.findings == b.findings
    c = generate_fundus(3, size=SIZE, seed=7, index=3)
    d = generate_fundus(3, size=SIZE, seed=8, index=2)
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.image, d.image)


def test_output_types_and_shapes():
    f = generate_fundus(2, size=SIZE, seed=1, index=0)
    assert f.image.shape == (SIZE, SIZE, 3) and f.image.dtype == np.uint8
    assert f.masks.shape == (4, SIZE, SIZE) and f.masks.dtype == np.uint8
    assert set(np.unique(f.masks)) <= {0, 1}
    assert f.fov.shape == (SIZE, SIZE) and f.fov.dtype == bool
    assert f.grade == 2 and f.style == "default" and f.seed == 1 and f.index == 0
    assert f.eye in ("left", "right")
    assert set(f.findings) <= set(FINDINGS)
    assert np.array_equal(cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1], f.image)
    sample = f.to_sample()
    assert sample.grade == 2 and sample.has_masks and sample.name == "SYN_00000"


@pytest.mark.parametrize("grade", [2, 3, 4])
def test_masks_are_exactly_the_drawn_lesions_on_the_retina(grade):
    # On the rendered retina (before the camera) a lesion changes a pixel only where its alpha is > 0; the
    # mask is alpha >= 0.5, so outside a thin soft rim around each mask nothing at all has changed.
    for index in range(3):
        eye, path = _synth_fundus._plan(grade, 11, index)
        raster = synthetic.Raster(192, 0.46 * 192)
        lit, alphas = _synth_fundus._render_retina(eye, path, raster, draw_lesions=True)
        bare, none = _synth_fundus._render_retina(eye, path, raster, draw_lesions=False)
        assert not none.any()
        masks = alphas >= 0.5
        union = masks.any(axis=0)
        assert union.any()
        diff = np.abs(lit - bare).max(axis=2)
        # Every mask pixel differs from the lesion-free retina. Real lesions are faint (a few percent of the
        # background, see test_lesion_realism.py), so "differs" means a few 8-bit levels, not a glaring change.
        assert np.percentile(diff[union], 2) > 0.004
        for k in range(4):
            if masks[k].any():
                assert diff[masks[k]].mean() > 0.02, LESIONS[k]
        # Beyond the soft rim (cotton-wool spots have the widest), nothing changed at all.
        rim = ndimage.binary_dilation(union, iterations=6)
        assert diff[~rim].max() < 1e-6
        # The anti-aliased rim (alpha < 0.5) carries only a small share of all the change.
        assert diff[union].sum() > 0.7 * diff.sum()


def test_tiny_lesions_still_reach_their_mask():
    # A dot or fleck smaller than a pixel at a small image size must not tint the image without a mask.
    from drgnet.data import _synth_lesions as sl

    raster = synthetic.Raster(96, 0.46 * 96)
    rng = np.random.default_rng(0)
    for shape in ("dot", "exudate"):
        make = sl._make_dot_blot if shape == "dot" else sl._make_exudate
        for _ in range(20):
            les = make(rng, 0.1, -0.2, False)
            les.polygons = [p * 0.2 for p in les.polygons]
            les.radius *= 0.2
            a, _, _ = sl._lesion_alpha(les, raster)
            assert a.max() >= 0.5, shape


def test_grade_3_haemorrhages_are_dark_red_not_black():
    f = generate_fundus(3, size=256, seed=0, index=3)
    he = ndimage.binary_erosion(f.masks[1].astype(bool), iterations=1)
    assert he.any()
    r, g, b = np.median(f.image[he].astype(float), axis=0)
    # Real haemorrhages (IDRiD_01-04): median RGB (163, 66, 29), (132, 36, 0), (171, 81, 30), (77, 23, 3).
    assert r > 100 and r > 2.2 * g and g > 15 and b < g + 5


def test_masks_match_the_photograph_after_the_camera():
    f = generate_fundus(3, size=SIZE, seed=3, index=1)
    bare = generate_fundus(3, size=SIZE, seed=3, index=1, draw_lesions=False)
    assert not bare.masks.any()
    union = f.masks.any(axis=0)
    assert union.any()
    diff = np.abs(f.image.astype(int) - bare.image.astype(int)).max(axis=2)
    assert diff[union].mean() > 25
    # Same camera noise and JPEG blocks: outside the 16x16 JPEG neighbourhood of a lesion nothing changes.
    far = ~ndimage.binary_dilation(union, structure=np.ones((3, 3)), iterations=18)
    assert diff[far].max() <= 1


def test_grade_0_has_no_lesions():
    for index in range(4):
        f = generate_fundus(0, size=128, seed=5, index=index)
        assert not f.masks.any()
        assert f.findings == ()


def test_grade_1_has_microaneurysms_only():
    for index in range(6):
        f = generate_fundus(1, size=128, seed=5, index=index)
        assert _lesions_present(f) == {"MA"}
        assert f.findings == ("microaneurysms",)


def test_grade_2_is_more_than_microaneurysms_but_not_severe():
    for index in range(6):
        f = generate_fundus(2, size=128, seed=5, index=index)
        assert _lesions_present(f) & {"HE", "EX", "SE"}
        assert not set(f.findings) & (SEVERE_VASCULAR | PROLIFERATIVE | {"haemorrhages_4_quadrants"})
        assert ndimage.label(f.masks[1])[1] <= 15


def _he_quadrants(f) -> int:
    he = f.masks[1].astype(bool)
    c = f.image.shape[0] / 2.0
    ys, xs = np.nonzero(he)
    quads = {(int(y + 0.5 >= c), int(x + 0.5 >= c)) for y, x in zip(ys, xs, strict=True)}
    return len(quads)


def test_grade_3_is_severe_by_the_4_2_1_rule():
    for index in range(8):
        f = generate_fundus(3, size=SIZE, seed=2, index=index)
        assert not set(f.findings) & PROLIFERATIVE
        assert _he_quadrants(f) == 4 or set(f.findings) & SEVERE_VASCULAR, f.findings
        if "haemorrhages_4_quadrants" in f.findings:
            assert _he_quadrants(f) == 4


def test_grade_4_has_a_proliferative_finding():
    for index in range(8):
        f = generate_fundus(4, size=128, seed=2, index=index)
        assert set(f.findings) & PROLIFERATIVE, f.findings


def test_same_eye_whatever_the_grade():
    # The eye (its anatomy) comes from its own random stream, so grades can be compared on one eye.
    a = _synth_fundus._plan(0, 4, 9)[0]
    b = _synth_fundus._plan(4, 4, 9)[0]
    assert np.array_equal(a.disc, b.disc)
    assert len(a.vessels) == len(b.vessels)


def test_field_of_view_is_a_circle_on_black():
    for index in range(4):
        f = generate_fundus(0, size=SIZE, seed=9, index=index)
        fov = f.fov
        ys, xs = np.nonzero(fov)
        c = SIZE / 2.0 - 0.5
        r = np.sqrt((ys - c) ** 2 + (xs - c) ** 2).max()
        full = np.pi * r * r
        assert 0.6 * full < fov.sum() <= 1.02 * full
        # Circular: every row of the field is one run, centred on the image.
        for y in np.unique(ys):
            row = np.nonzero(fov[y])[0]
            assert row[-1] - row[0] + 1 == len(row)
            assert abs((row[0] + row[-1]) / 2 - c) <= 1.0
        outside = ~ndimage.binary_dilation(fov, iterations=3)
        # JPEG rings a few levels past the rim (more with the camera's sensor noise); on average it stays black.
        assert f.image[outside].max() <= 20 and f.image[outside].mean() < 0.5
        assert not f.masks[:, ~fov].any()
        assert f.image[fov].mean() > 40


def test_clipped_field_is_flat_at_top_and_bottom():
    clipped = dataclasses.replace(STYLES["default"], name="clipped", clip_probability=1.0)
    f = generate_fundus(0, size=SIZE, seed=1, index=0, style=clipped)
    rows = np.nonzero(f.fov.any(axis=1))[0]
    cols = np.nonzero(f.fov.any(axis=0))[0]
    # The field is wider than it is tall, and its top and bottom rows are long flat edges.
    assert cols[-1] - cols[0] > rows[-1] - rows[0] + 8
    assert f.fov[rows[0]].sum() > SIZE * 0.3
    assert f.fov[rows[-1]].sum() > SIZE * 0.3


def test_styles_change_the_camera_not_the_eye():
    base = generate_fundus(3, size=SIZE, seed=4, index=1)
    means = {}
    for name in STYLES:
        f = generate_fundus(3, size=SIZE, seed=4, index=1, style=name)
        assert f.style == name
        assert f.findings == base.findings
        assert f.eye == base.eye
        assert _lesions_present(f) == _lesions_present(base)
        means[name] = f.image[f.fov].astype(float).mean(axis=0)
    names = list(means)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(means[a] - means[b]).max() > 3.0, (a, b)
    # A camera that differs only in colour gives exactly the same masks.
    plain = dataclasses.replace(STYLES["default"], name="plain", clip_probability=0.0)
    warm = dataclasses.replace(plain, name="warm", white_balance=(1.15, 0.9, 0.7), gamma=0.8, noise_sigma=4.0)
    p = generate_fundus(3, size=SIZE, seed=4, index=1, style=plain)
    w = generate_fundus(3, size=SIZE, seed=4, index=1, style=warm)
    assert np.array_equal(p.masks, w.masks)
    assert np.abs(p.image[p.fov].mean(axis=0) - w.image[w.fov].mean(axis=0)).max() > 5


def test_smaller_field_scales_the_masks():
    a = generate_fundus(3, size=SIZE, seed=6, index=0, style="default")
    b = generate_fundus(3, size=SIZE, seed=6, index=0, style="clinic_b")
    ratio = b.fov.sum() / a.fov.sum()
    he_ratio = b.masks[1].sum() / max(1, a.masks[1].sum())
    assert 0.5 * ratio < he_ratio < 1.6 * ratio


def test_bad_inputs_are_rejected_with_clear_messages():
    with pytest.raises(ValueError, match="ICDR"):
        generate_fundus(5)
    with pytest.raises(ValueError, match="ICDR"):
        generate_fundus(-1)
    with pytest.raises(ValueError, match="'polaroid'.*default.*smartphone"):
        generate_fundus(0, style="polaroid")
    with pytest.raises(ValueError, match="size"):
        generate_fundus(0, size=8)
    with pytest.raises(ValueError, match="gamma"):
        dataclasses.replace(STYLES["default"], gamma=0.0)


def test_cohort_layout_and_csv(tmp_path):
    out = tmp_path / "cohort"
    info = generate_cohort(out, n=6, size=128, seed=3, workers=1, progress=False)
    assert info.n == 6 and info.out == out and info.grades_csv == out / GRADES_CSV and info.seconds > 0
    with open(out / GRADES_CSV, newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == GRADES_CSV_HEADER
    assert [r[0] for r in rows[1:]] == [f"SYN_{i:05d}" for i in range(6)]
    for i, (name, grade, style, seed, findings) in enumerate(rows[1:]):
        f = generate_fundus(int(grade), size=128, seed=3, index=i)
        assert style == "default" and seed == "3" and findings == ";".join(f.findings)
        assert (out / IMAGE_DIR / f"{name}.jpg").read_bytes() == f.jpeg
        for k, lesion in enumerate(LESIONS):
            p = mask_path(out, name, lesion)
            assert p.parent.name == LESION_DIRS[lesion] and p.name == f"{name}_{lesion}.png"
            m = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            assert m.shape == (128, 128) and m.dtype == np.uint8
            assert set(np.unique(m)) <= {0, 255}
            assert np.array_equal(m > 0, f.masks[k] > 0)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest == {
        "generator": "drgnet.synthetic",
        "version": 1,
        "n": 6,
        "size": 128,
        "style": "default",
        "seed": 3,
        "generator_revision": synthetic.GENERATOR_REVISION,
    }
    assert not list(out.rglob("*.tmp"))
    # A smaller cohort in the same folder leaves no stale images behind.
    generate_cohort(out, n=2, size=128, seed=3, workers=1, progress=False)
    assert sorted(p.name for p in (out / IMAGE_DIR).iterdir()) == ["SYN_00000.jpg", "SYN_00001.jpg"]


def test_cohort_grades_follow_weights_and_explicit_grades(tmp_path):
    info = generate_cohort(tmp_path / "a", n=3, size=96, grades=[4, 0, 2], workers=1, progress=False)
    with open(info.grades_csv, newline="") as fh:
        assert [r["Retinopathy grade"] for r in csv.DictReader(fh)] == ["4", "0", "2"]
    grades = _synth_cohort._cohort_grades(400, 0, None, None)
    counts = np.bincount(grades, minlength=5) / 400
    assert np.all(np.abs(counts - np.array(synthetic.DEFAULT_GRADE_WEIGHTS)) < 0.07)
    assert set(_synth_cohort._cohort_grades(50, 1, None, [0, 0, 0, 1, 0])) == {3}
    with pytest.raises(ValueError, match="one grade per image"):
        generate_cohort(tmp_path / "b", n=2, size=96, grades=[1], workers=1, progress=False)
    with pytest.raises(ValueError, match="grade_weights"):
        generate_cohort(tmp_path / "b", n=2, size=96, grade_weights=[1, 2], workers=1, progress=False)
    with pytest.raises(ValueError, match="unknown camera style"):
        generate_cohort(tmp_path / "b", n=2, size=96, style="nope", workers=1, progress=False)


@pytest.mark.slow
def test_parallel_cohort_equals_serial(tmp_path):
    a = generate_cohort(tmp_path / "serial", n=4, size=96, seed=5, workers=1, progress=False)
    b = generate_cohort(tmp_path / "parallel", n=4, size=96, seed=5, workers=2, progress=False)
    assert a.grades_csv.read_text() == b.grades_csv.read_text()
    for p in sorted((tmp_path / "serial").rglob("SYN_*")):
        q = tmp_path / "parallel" / p.relative_to(tmp_path / "serial")
        assert p.read_bytes() == q.read_bytes(), p.name


def test_preview_contact_sheet(tmp_path):
    path = write_preview(tmp_path / "preview.png", size=96)
    sheet = cv2.imread(str(path))
    assert sheet is not None
    # Five columns; rows: grades, masks, then the other styles.
    assert sheet.shape[1] >= 5 * 96
    assert sheet.shape[0] >= 3 * 96
