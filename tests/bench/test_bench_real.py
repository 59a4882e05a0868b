"""``drgnet bench real`` at a toy budget on the real IDRiD photographs (skipped when ../shared is absent)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from drgnet.bench import real
from drgnet.data.preprocess import preprocess_sample
from drgnet.data.readers import open_dataset
from drgnet.data.real_samples import idrid_train4_dir
from drgnet.labels import LESIONS
from drgnet.training.mix import healthy_real_photographs


@pytest.mark.slow
def test_leave_one_out_scores_the_left_out_photograph_and_the_held_out_healthy_ones(tmp_path):
    if idrid_train4_dir() is None:
        pytest.skip("../shared/data/idrid-train4 is absent (set DRGNET_SHARED_DIR): no real photographs to score")
    cfg = dataclasses.replace(real.quick_config(), variants=("synthetic", "mixed"), folds=(0,))
    rows = real.run(cfg, tmp_path, log=lambda _: None)
    by_variant = {r["variant"]: r for r in rows}
    assert set(by_variant) == {"synthetic", "mixed"}
    n_healthy = len(healthy_real_photographs())
    for row in rows:
        assert list(row["left_out_grades"]) == ["IDRiD_01"]
        assert 0 <= row["left_out_grades"]["IDRiD_01"] <= 4
        for lesion in ("MA", "HE", "EX"):  # IDRiD_01 shows all three: AUPR is a number in (0, 1]
            assert 0.0 < row["aupr"][lesion] <= 1.0
        assert set(row["aupr"]) == set(LESIONS)
        assert math.isnan(row["aupr"]["SE"])  # no cotton-wool spot on IDRiD_01: no AUPR rather than a made-up one
    # Synthetic-only training saw no healthy real photograph: all are scored; mixed trained on 3 of every 4.
    assert sum(len(g) for g in by_variant["synthetic"]["healthy_grades"].values()) == n_healthy
    assert sum(len(g) for g in by_variant["mixed"]["healthy_grades"].values()) == len(range(0, n_healthy, 4))
    # Scored on the left-out photograph's lesion view as made once from the original: every annotated pixel counts.
    view = preprocess_sample(open_dataset(idrid_train4_dir(), layout="idrid-seg")[0], cfg.train.model.lesion_fov_px)
    for k, lesion in enumerate(LESIONS):
        expected = int(((view.masks[k] > 0) & ~view.ignore).sum()) if view.lesion_known[k] else 0
        assert by_variant["mixed"]["positives"][lesion] == expected
    table = (tmp_path / "real.md").read_text()
    assert "calibrated synthetic + real" in table and "left-out IDRiD graded >= 1" in table
    assert json.loads((tmp_path / "real.json").read_text())["rows"][1]["variant"] == "mixed"


def test_the_default_budget_is_a_valid_config():
    """`make bench` runs `drgnet bench real` on the defaults (plus a few --set): they must hold together."""
    from drgnet.bench.real import RealBenchConfig

    cfg = RealBenchConfig()
    assert cfg.train.model.lesion_fov_px >= cfg.train.model.input_size
    with pytest.raises(ValueError, match="unknown test-time augmentation 'mirror'"):
        RealBenchConfig(tta="mirror")


@pytest.mark.slow
def test_resume_reuses_a_finished_fold_and_refuses_one_made_with_other_settings(tmp_path):
    """Folds trained in separate processes pool into one table; a run folder of other settings is not mixed in."""
    if idrid_train4_dir() is None:
        pytest.skip("../shared/data/idrid-train4 is absent (set DRGNET_SHARED_DIR): no real photographs to score")
    cfg = dataclasses.replace(real.quick_config(), variants=("mixed",), folds=(1,), resume=True)
    first = real.run(cfg, tmp_path, log=lambda _: None)[0]
    weights = tmp_path / "runs" / "mixed" / "fold1" / "last" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert first["synthetic_generator"] == real.synthetic.GENERATOR_REVISION
    # A cohort folder found under --out is reused as it is; an older generator's is named, not passed off as today's.
    (manifest,) = tmp_path.glob("cohort-v2-*/manifest.json")
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "generator_revision": "v0.9"}))
    logged: list[str] = []
    both = real.run(dataclasses.replace(cfg, folds=(0, 1)), tmp_path, log=logged.append)[0]
    assert weights.stat().st_mtime_ns == stamp  # fold 1 was not trained again
    assert any("resuming" in line and "fold1" in line for line in logged)
    assert any("made by generator v0.9, not today's" in line for line in logged)
    assert both["synthetic_generator"] == "v0.9"
    assert both["left_out_grades"]["IDRiD_02"] == first["left_out_grades"]["IDRiD_02"]
    assert list(both["left_out_grades"]) == ["IDRiD_01", "IDRiD_02"]
    assert both["train_seconds"] >= first["train_seconds"]
    with pytest.raises(ValueError, match=r"fold1.*other settings"):
        real.run(dataclasses.replace(cfg, real_weight=cfg.real_weight + 1), tmp_path, log=lambda _: None)
    # Test-time flips change the scoring only: the same models are scored again, not trained again.
    flipped = real.run(dataclasses.replace(cfg, tta="hflip"), tmp_path, log=lambda _: None)[0]
    assert weights.stat().st_mtime_ns == stamp
    assert flipped["photo_aupr"]["IDRiD_02"] != first["photo_aupr"]["IDRiD_02"]
    assert "test-time flips 'hflip'" in (tmp_path / "real.md").read_text()


def test_the_table_gives_each_left_out_photograph_alone_beside_the_pool():
    row = {
        "variant": "mixed",
        "label": "calibrated synthetic + real",
        "aupr": {"MA": 0.2, "HE": 0.3, "EX": 0.7, "SE": float("nan")},
        "photo_aupr": {"IDRiD_01": {"MA": 0.25, "HE": 0.5, "EX": 0.8, "SE": float("nan")}},
        "left_out_grades": {"IDRiD_01": 3},
        "healthy_grades": {"DRIVE_40": [0]},
        "other_dr_grades": {"HRF_07_dr": [1]},
        "train_seconds": 12.0,
        "synthetic_generator": "v2.0",
    }
    table = real.markdown(real.RealBenchConfig(), [row])
    assert "generator v2.0." in table and "centres drawn by pixel" in table
    assert "| calibrated synthetic + real | IDRiD_01 | 0.250 | 0.500 | 0.800 | n/a |" in table
    assert "| calibrated synthetic + real | 0.200 | 0.300 | 0.700 | n/a | 1/1 DR (grades 3) |" in table
