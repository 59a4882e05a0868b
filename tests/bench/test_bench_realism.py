"""The realism benchmark: its classifier separates what differs and not what does not; it runs end to end."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from drgnet.bench import realism
from drgnet.data.synthetic import generate_fundus


def test_cross_validated_auc_sees_a_difference_and_only_a_difference():
    rng = np.random.default_rng(0)
    real = rng.normal(0.0, 1.0, (12, 40))
    apart = rng.normal(0.0, 1.0, (24, 40)) + 1.5  # shifted in every feature
    same = rng.normal(0.0, 1.0, (24, 40))
    assert realism.cross_validated_auc(real, apart, folds=4, seed=0) > 0.95
    chance = [realism.cross_validated_auc(real, same, folds=4, seed=s) for s in range(8)]
    assert 0.25 < float(np.mean(chance)) < 0.75


def test_bench_runs_old_and_new_generator_with_a_control(tmp_path):
    # Stand-ins for real photographs (the real ones stay outside the repository): two "datasets" of another camera.
    paths = []
    for i in range(6):
        f = generate_fundus(i % 5, size=96, seed=9, style="smartphone" if i < 3 else "clinic_b", index=i)
        path = tmp_path / f"{'DS1' if i < 3 else 'DS2'}_{i}.jpg"
        path.write_bytes(f.jpeg)
        paths.append(str(path))
    cfg = realism.RealismBenchConfig(
        synthetic_counts=(4,), image_size=96, input_size=64, folds=2, repeats=2, real_paths=tuple(paths)
    )
    rows = realism.run(cfg, tmp_path / "out", log=lambda _: None)
    assert [r.generator for r in rows[:2]] == ["v1", "v2"]
    for r in rows[:2]:
        assert r.n_real == 6 and r.n_synthetic == 4 and len(r.aucs) == 2
        assert all(0.0 <= a <= 1.0 for a in r.aucs)
    # The control row: one real source against the other, same classifier.
    assert rows[2].generator == "control: real DS1 vs other real" and rows[2].n_real == rows[2].n_synthetic == 3
    table = (tmp_path / "out" / "realism.md").read_text()
    assert "| v1 | 6 | 4 |" in table and "| v2 | 6 | 4 |" in table


def test_bench_leaves_out_v1_where_its_frozen_copy_is_missing(tmp_path, monkeypatch):
    from drgnet.data import synthetic

    paths = []
    for i in range(4):
        path = tmp_path / f"DS_{i}.jpg"
        path.write_bytes(generate_fundus(i, size=96, seed=5, style="smartphone", index=i).jpeg)
        paths.append(str(path))
    monkeypatch.setattr(synthetic, "V1_DIR", tmp_path / "nowhere")
    cfg = realism.RealismBenchConfig(
        synthetic_counts=(3,), image_size=96, input_size=64, folds=2, repeats=1, pool_factor=1, real_paths=tuple(paths)
    )
    said: list[str] = []
    rows = realism.run(cfg, tmp_path / "out", log=said.append)
    assert [r.generator for r in rows] == ["v2"]
    assert any("generator v1 left out" in line for line in said)
    with pytest.raises(ValueError, match="pool_factor"):
        realism.run(dataclasses.replace(cfg, pool_factor=0), tmp_path)
    # Ablations: the same classifier again after each transform of both sets, one row per generator and count.
    rows = realism.run(dataclasses.replace(cfg, ablations=("coarse48", "highpass8")), tmp_path / "out", log=said.append)
    assert [r.generator for r in rows] == ["v2", "v2 [coarse48]", "v2 [highpass8]"]
    assert all(len(r.aucs) == 1 and 0.0 <= r.aucs[0] <= 1.0 for r in rows)
    with pytest.raises(ValueError, match="unknown ablation.*choose from green-only"):
        realism.run(dataclasses.replace(cfg, ablations=("sepia",)), tmp_path)


def test_ablations_keep_only_what_they_name():
    rng = np.random.default_rng(0)
    fine = rng.integers(0, 40, (384, 384, 3)).astype(np.uint8)  # texture, no layout (the bench's 384 px input)
    dark, bright = fine + 60, fine + 160  # the same texture at two exposures
    assert np.abs(realism.ABLATIONS["highpass8"](dark).astype(int) - realism.ABLATIONS["highpass8"](bright)).max() <= 2
    smooth = realism.ABLATIONS["coarse48"](np.full((384, 384, 3), 100, np.uint8) + fine)
    assert smooth.std() < fine.std() / 3  # the texture is gone, the level stays
    assert abs(float(smooth.mean()) - (100 + float(fine.mean()))) < 2
    tinted = realism.ABLATIONS["colour-normalised"](np.clip(dark * np.array([1.0, 0.6, 0.3]), 0, 255).astype(np.uint8))
    plain = realism.ABLATIONS["colour-normalised"](dark)
    assert np.abs(tinted.astype(int) - plain).mean() < 3  # colour balance and exposure gone


def test_bench_needs_real_photographs(tmp_path, monkeypatch):
    monkeypatch.setattr(realism, "real_photographs", lambda: [])
    with pytest.raises(ValueError, match="fewer than two real photographs"):
        realism.run(realism.RealismBenchConfig(synthetic_counts=(4,)), tmp_path)
    with pytest.raises(ValueError, match="unknown generator"):
        realism.run(realism.RealismBenchConfig(generators=("v3",)), tmp_path)
