"""``drgnet bench real`` at a toy budget on the real IDRiD photographs (skipped when ../shared is absent)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from drgnet.bench import real
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
    table = (tmp_path / "real.md").read_text()
    assert "calibrated synthetic + real" in table and "left-out IDRiD graded >= 1" in table
    assert json.loads((tmp_path / "real.json").read_text())["rows"][1]["variant"] == "mixed"


def test_the_default_budget_is_a_valid_config():
    """`make bench` runs `drgnet bench real` on the defaults (plus a few --set): they must hold together."""
    from drgnet.bench.real import RealBenchConfig

    cfg = RealBenchConfig()
    assert cfg.train.model.lesion_fov_px >= cfg.train.model.input_size
