"""The speed benchmark runs end to end on a toy budget (its numbers mean something only at 512 px)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

from drgnet.bench import speed
from drgnet.cli import app
from drgnet.config import to_dict

runner = CliRunner()


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


def test_tile_bench_times_every_stage_of_the_tiled_and_the_global_path(tmp_path, tiny_config):
    from drgnet.bench import tiles

    tiny = dataclasses.replace(tiny_config, lesion_fov_px=192)
    cfg = tiles.TileBenchConfig(tiny, width=360, height=240, engines=("onnx",), threads=1, repeats=1)
    result = tiles.run(cfg, tmp_path, log=lambda _: None)
    rows = {(r["engine"], r["path"].split()[0].strip(",")): r for r in result["rows"]}
    assert set(rows) == {("onnx", "global"), ("onnx", "tiled")}  # PyTorch's rows are the same code, slower
    for (_, path), r in rows.items():
        assert r["total"] == pytest.approx(sum(r[s] for s in tiles.STAGES))
        assert all(r[s] >= 0 for s in tiles.STAGES) and r["network"] > 0 and r["cpu"] > 0
        # The field of view is 240 px high, so the 192 px lesion view is cut into 64 px tiles (with the global view).
        assert (r["lesion_side"], r["pictures"] > 1) == ((64, False) if path == "global" else (192, True))
    report = (tmp_path / "tiles.md").read_text()
    assert "tiled, lesion view 192" in report and "vs baseline" in report and "load average" in report
    with pytest.raises(ValueError, match="unknown engine"):
        tiles.run(tiles.TileBenchConfig(engines=("tensorrt",)), tmp_path)


def test_tile_bench_times_a_trained_checkpoint_at_its_own_sizes(tmp_path, tiny_checkpoint, tiny_config):
    from drgnet.bench import tiles

    cfg = tiles.for_checkpoint(tiny_checkpoint, (tiny_config.lesion_fov_px, 96))
    assert cfg.model == tiny_config and cfg.also_lesion_fov_px == (96,)
    # The command line: a settings file, --set over it, the checkpoint's own network instead of model.*.
    settings = tmp_path / "tiles.toml"
    settings.write_text('width = 360\nheight = 240\nengines = ["onnx"]\nalso_lesion_fov_px = [96]\nrepeats = 3\n')
    args = ["bench", "tiles", "--checkpoint", str(tiny_checkpoint), "--config", str(settings), "--set", "repeats=1"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "out" / "tiles.json").read_text())
    assert saved["config"]["checkpoint"] == str(tiny_checkpoint) and saved["config"]["repeats"] == 1
    assert saved["config"]["model"] == to_dict(tiny_config)
    timed = sorted(r["lesion_side"] for r in saved["rows"])
    assert timed == [tiny_config.input_size, 96, tiny_config.lesion_fov_px]
    with pytest.raises(ValueError, match="not a checkpoint folder"):
        tiles.for_checkpoint(tmp_path / "missing")


def test_bench_commands_take_their_settings_from_the_config_dataclass(tmp_path):
    bad = runner.invoke(app, ["bench", "speed", "--set", "size=100", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "multiple of 32" in bad.output
    unknown = runner.invoke(app, ["bench", "realism", "--set", "counts=16"])
    assert unknown.exit_code == 2 and "synthetic_counts" in unknown.output  # the valid names are listed
    report = tmp_path / "synth.md"
    args = ["--set", "n=2", "--set", "size=64", "--set", "serial_n=1", "--set", "workers=1", "--out", str(report)]
    synth = runner.invoke(app, ["bench", "synth", *args])
    assert synth.exit_code == 0, synth.output
    assert "| cohort | 2 | 64 | 1 |" in report.read_text()
