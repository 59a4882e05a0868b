"""The benchmarks run end to end on a toy budget (their numbers are only meaningful at full size)."""

from __future__ import annotations

import json
import math

import pytest

from drgnet.bench import quality
from drgnet.config import TrainConfig, TransferConfig


def test_quality_bench_scores_every_variant_on_the_same_split(tmp_path):
    cfg = quality.QualityBenchConfig(
        n=24,
        image_size=128,
        input_size=64,
        train=TrainConfig(epochs=1, max_steps_per_epoch=1, batch_size=4, augment="light"),
        latency_runs=2,
        variants=("drgnet", "no_constraint", "reference"),
    )
    rows = quality.run(cfg, tmp_path, log=lambda _: None)
    assert [r["variant"] for r in rows] == ["drgnet", "no_constraint", "reference"]
    for r in rows:
        assert r["params_m"] > 0 and r["cpu_latency_ms"] > 0
        assert -1 <= r["qwk"] <= 1 or math.isnan(r["qwk"])
    assert rows[2]["params_m"] > 20 * rows[0]["params_m"]  # the reference is the heavy structure
    table = (tmp_path / "quality.md").read_text()
    assert "Reference: ResNet-50 grader + 4 binary U-Nets" in table and "latency vs DRGNet" in table
    assert len(json.loads((tmp_path / "quality.json").read_text())["rows"]) == 3


def test_quality_bench_rejects_unknown_variants(tmp_path):
    with pytest.raises(ValueError, match="unknown variant"):
        quality.run(quality.QualityBenchConfig(variants=("drgnet", "vgg")), tmp_path)


def test_transfer_bench_reports_every_method_for_a_target(tmp_path):
    from drgnet.bench import transfer

    cfg = transfer.TransferBenchConfig(
        n_source=16,
        n_target_pool=4,
        n_target_test=6,
        image_size=128,
        input_size=64,
        target_styles=("smartphone",),
        source=TrainConfig(epochs=1, max_steps_per_epoch=1, batch_size=4, augment="light"),
        adapt=TransferConfig(steps=1, batch_size=4),
    )
    rows = transfer.run(cfg, tmp_path, log=lambda _: None)
    methods = ["source_only", "source_finetune", "wasserstein", "entropy", "both"]
    assert [(r["target"], r["row"]) for r in rows] == [(t, m) for t in cfg.target_styles for m in methods]
    for r in rows:
        assert 0 <= r["entropy"] <= 1
    table = (tmp_path / "transfer.md").read_text()
    assert "+ Wasserstein" in table and "overhead" in table
