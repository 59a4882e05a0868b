"""Synthetic lesions stay calibrated to real ones: contrast, size and count per lesion within 50% of real values.

The reference is ``lesion_stats.REAL_IDRID_TRAIN4`` (measured on four real IDRiD photographs with the same code);
when the shared data folder is present the real photographs are measured again and must agree with it too.

Regions per photograph are compared on a grade mix matched to the real photographs: IDRiD's segmentation set holds
DR photographs only, all four showing MA, HE and EX, so the cohort is grades 2, 3 and 4 in equal shares and counts
are medians over the photographs that show the lesion (SE has no real count: one annotated region).

Haemorrhage shapes (median solidity and elongation of the regions) are compared at 1024 px, where most synthetic
haemorrhages span the 30 pixels a shape needs, as departures from a disc: 1 - solidity (the share of its hull a region
leaves empty) and elongation - 1, each within 50% of the real one.
"""

from __future__ import annotations

import pytest

from drgnet.data import _synth_lesions, lesion_stats, real_samples
from drgnet.data.synthetic import generate_fundus
from drgnet.labels import LESIONS

TOLERANCE = 0.5  # the bound: every value within 50% of the real one
MATCHED_GRADES = (2, 3, 4) * 4  # 12 photographs


def _off(value: float, real: float) -> float:
    return abs(value - real) / abs(real)


def _check(summary: dict[str, lesion_stats.LesionSummary], reference: dict, what: str) -> list[str]:
    bad = []
    for lesion in LESIONS:
        s, ref = summary[lesion], reference[lesion]
        checks = {"contrast": (s.contrast, ref["contrast"]), "median diameter": (s.median, ref["median"])}
        if ref["regions_per_photo"] is not None:
            checks["regions per photo"] = (s.regions_per_photo, ref["regions_per_photo"])
        for name, (value, real) in checks.items():
            if value is None or _off(value, real) > TOLERANCE:
                bad.append(f"{what} {lesion} {name}: {value} vs real {real}")
    return bad


def _check_shapes(summary: dict[str, lesion_stats.LesionSummary], what: str, lesions=("HE",)) -> list[str]:
    bad = []
    for lesion in lesions:
        s, ref = summary[lesion], lesion_stats.REAL_IDRID_TRAIN4[lesion]
        checks = {
            "1 - solidity": (None if s.solidity is None else 1.0 - s.solidity, 1.0 - ref["solidity"]),
            "elongation - 1": (None if s.elongation is None else s.elongation - 1.0, ref["elongation"] - 1.0),
        }
        for name, (value, real) in checks.items():
            if value is None or _off(value, real) > TOLERANCE:
                bad.append(f"{what} {lesion} {name}: {value} vs real {real:.2f}")
    return bad


def _shape_summary(n: int = 6) -> dict[str, lesion_stats.LesionSummary]:
    return lesion_stats.summarise(
        lesion_stats.measure_sample(generate_fundus(g, size=1024, seed=0, index=i).to_sample())
        for i, g in enumerate(MATCHED_GRADES[:n])
    )


@pytest.fixture(scope="module")
def cohort_summary(tmp_path_factory) -> dict[str, lesion_stats.LesionSummary]:
    photos = []
    for index, grade in enumerate(MATCHED_GRADES):
        f = generate_fundus(grade, size=512, seed=0, index=index)
        photos.append(lesion_stats.measure_sample(f.to_sample()))
    return lesion_stats.summarise(photos)


def test_synthetic_lesions_are_within_50_percent_of_real_ones(cohort_summary):
    assert all(cohort_summary[les].photos_with for les in LESIONS)
    assert _check(cohort_summary, lesion_stats.REAL_IDRID_TRAIN4, "synthetic") == []


def test_old_generator_fails_the_same_check():
    # The check can fail: the uncalibrated generator's lesions are 4-5x too contrasted.
    photos = [
        lesion_stats.measure_sample(generate_fundus(g, size=256, seed=0, index=i, generator="v1").to_sample())
        for i, g in enumerate(MATCHED_GRADES[:6])
    ]
    bad = _check(lesion_stats.summarise(photos), lesion_stats.REAL_IDRID_TRAIN4, "v1")
    assert any("MA contrast" in b for b in bad) and any("HE contrast" in b for b in bad)


def test_haemorrhage_shapes_are_within_50_percent_of_real_ones():
    summary = _shape_summary()
    assert summary["HE"].shaped >= 50  # enough regions for a median
    assert _check_shapes(summary, "synthetic") == []


def test_round_haemorrhages_fail_the_shape_check(monkeypatch):
    # The check can fail: haemorrhages drawn as one round, slightly wobbly blotch each (as up to v2.1) are too solid
    # and not elongated enough.
    def round_outline(rng, r, parts, rough):
        return [_synth_lesions._blotch(rng, r, rough, n=28)]

    monkeypatch.setattr(_synth_lesions, "_haemorrhage_outline", round_outline)
    bad = _check_shapes(_shape_summary(), "round")
    assert any("HE 1 - solidity" in b for b in bad) and any("HE elongation - 1" in b for b in bad), bad


def test_region_shape_of_simple_regions():
    import cv2
    import numpy as np

    disc = np.zeros((80, 80), np.uint8)
    cv2.circle(disc, (40, 40), 20, 1, -1)
    solidity, elongation = lesion_stats.region_shape(disc.astype(bool))
    assert solidity > 0.97 and elongation == pytest.approx(1.0, abs=0.02)
    oval = np.zeros((80, 80), np.uint8)
    cv2.ellipse(oval, ((40, 40), (60, 20), 30), 1, -1)
    assert lesion_stats.region_shape(oval.astype(bool))[1] == pytest.approx(3.0, rel=0.05)
    # Two discs joined by a neck: lobed, so its outline fills clearly less of its hull.
    lobed = np.zeros((80, 120), np.uint8)
    cv2.circle(lobed, (35, 40), 20, 1, -1)
    cv2.circle(lobed, (85, 40), 20, 1, -1)
    cv2.rectangle(lobed, (35, 36), (85, 44), 1, -1)
    assert lesion_stats.region_shape(lobed.astype(bool))[0] < 0.85


def test_statistics_do_not_depend_on_the_image_size():
    # Sizes are per mille of the FOV and lesions are drawn in field units, so the same eyes at 512 and 1024 px
    # measure alike (anti-aliasing and the camera's blur at a pixel scale make small differences).
    def summary(size: int) -> dict[str, lesion_stats.LesionSummary]:
        return lesion_stats.summarise(
            lesion_stats.measure_sample(generate_fundus(g, size=size, seed=0, index=i).to_sample())
            for i, g in enumerate(MATCHED_GRADES[:3])
        )

    small, big = summary(512), summary(1024)
    for lesion in LESIONS:
        a, b = small[lesion], big[lesion]
        assert _off(b.median, a.median) < 0.15, lesion
        assert _off(b.contrast, a.contrast) < 0.3, lesion
        assert _off(b.regions_per_photo, a.regions_per_photo) < 0.25, lesion
        assert _off(b.contrast, lesion_stats.REAL_IDRID_TRAIN4[lesion]["contrast"]) < TOLERANCE, lesion


@pytest.mark.slow
def test_real_photographs_match_the_reference_values():
    folder = real_samples.idrid_train4_dir()
    if folder is None:
        pytest.skip("../shared/data/idrid-train4 not found (set DRGNET_SHARED_DIR)")
    summary = lesion_stats.summarise(lesion_stats.measure_folder(folder))
    for lesion in LESIONS:
        s, ref = summary[lesion], lesion_stats.REAL_IDRID_TRAIN4[lesion]
        assert s.median == pytest.approx(ref["median"], abs=0.1), lesion
        assert s.contrast == pytest.approx(ref["contrast"], abs=0.1), lesion
        if ref["regions_per_photo"] is not None:
            assert s.regions_per_photo == pytest.approx(ref["regions_per_photo"], abs=0.5), lesion
        assert s.solidity == pytest.approx(ref["solidity"], abs=0.005), lesion
        assert s.elongation == pytest.approx(ref["elongation"], abs=0.005), lesion


def test_synth_stats_command_measures_old_and_new_cohorts(tmp_path):
    import json

    from typer.testing import CliRunner

    from drgnet.cli import app

    runner = CliRunner()
    contrasts = {}
    for gen in ("v1", "v2"):
        out = tmp_path / gen
        args = ["synth", "--n", "3", "--size", "256", "--seed", "2", "--workers", "1", "--generator", gen]
        assert runner.invoke(app, [*args, "--out", str(out)]).exit_code == 0
        result = runner.invoke(app, ["synth-stats", str(out), "--json"])
        assert result.exit_code == 0, result.output
        payload = json.loads(result.output)
        assert payload["photos"] == 3 and set(payload["lesions"]) == set(LESIONS)
        assert {"solidity", "elongation", "shaped"} <= set(payload["lesions"]["HE"])
        contrasts[gen] = payload["lesions"]["MA"]["contrast"]
        table = runner.invoke(app, ["synth-stats", str(out)])
        assert "| MA |" in table.output and "per mille of FOV" in table.output and "solidity" in table.output
    # The old generator's microaneurysms are several times darker than the calibrated ones.
    assert contrasts["v1"] < 3 * contrasts["v2"] < 0
    missing = runner.invoke(app, ["synth-stats", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no such file or folder" in missing.output
