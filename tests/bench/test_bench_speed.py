"""The speed benchmark runs end to end on a toy budget (its numbers mean something only at 512 px)."""

from __future__ import annotations

import pytest

from drgnet.bench import speed


def test_speed_bench_measures_baseline_and_onnx_with_memory_and_flops(tmp_path):
    cfg = speed.SpeedBenchConfig(
        size=64, batches=(1,), engines=("drgnet_onnx",), min_iterations=1, min_seconds=0.0, matmul_size=256
    )
    result = speed.run(cfg, tmp_path, log=lambda _: None)
    rows = {(r["engine"], r["batch"]): r for r in result["rows"]}
    assert set(rows) == {("drgnet_eager", 1), ("drgnet_onnx", 1)}  # the baseline is always measured
    assert rows[("drgnet_eager", 1)]["ratio"] == 1.0
    for r in rows.values():
        assert r["images_per_s"] > 0 and r["peak_rss_delta_mib"] > 0 and r["iterations"] >= 1
        assert r["gflop_per_image"] > 0 and r["fraction_of_peak"] > 0 and r["achieved_gflops"] > 0
    assert result["matmul_peak_gflops"] > 0
    report = (tmp_path / "speed.md").read_text()
    assert "DRGNet, ONNX Runtime" in report and "matmul peak" in report and "vs DRGNet eager b1" in report
    assert (tmp_path / "speed.json").is_file()


def test_speed_bench_rejects_unknown_engines_and_sizes(tmp_path):
    with pytest.raises(ValueError, match="unknown engine"):
        speed.run(speed.SpeedBenchConfig(engines=("tensorrt",)), tmp_path)
    with pytest.raises(ValueError, match="multiple of 32"):
        speed.run(speed.SpeedBenchConfig(size=100), tmp_path)
