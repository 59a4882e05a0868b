"""A pixel limit for what is drawn: maps and overlays of a big photograph come from a downscaled copy, so their cost
stops growing with the camera's resolution (a 79-megapixel photograph cost GBs; see README "Big photographs")."""

from __future__ import annotations

import io
import os
import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from drgnet.cli import app
from drgnet.data.synthetic import generate_fundus
from drgnet.inference import Predictor, draw_max_pixels, draw_shape, render_overlay


def _big_photo(path: Path, width: int, height: int) -> Path:
    """A synthetic fundus photograph upscaled onto a black frame of ``width x height``."""
    small = np.array(Image.open(io.BytesIO(generate_fundus(2, 256, 3).jpeg)))
    side = min(width, height)
    big = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - side) // 2, (width - side) // 2
    big[y0 : y0 + side, x0 : x0 + side] = cv2.resize(small, (side, side), interpolation=cv2.INTER_LINEAR)
    Image.fromarray(big).save(path, quality=90)
    return path


def test_draw_shape_and_setting(monkeypatch):
    assert draw_shape((3000, 4000), None) == (3000, 4000)
    assert draw_shape((3000, 4000), 12_000_000) == (3000, 4000)
    h, w = draw_shape((7680, 10240), 16_000_000)
    assert h * w <= 16_000_000 and abs(w / h - 4 / 3) < 0.01
    monkeypatch.setenv("DRGNET_DRAW_MAX_PIXELS", "250000")
    assert draw_max_pixels() == 250_000
    monkeypatch.setenv("DRGNET_DRAW_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match="DRGNET_DRAW_MAX_PIXELS='lots'"):
        draw_max_pixels()


def test_overlay_is_drawn_from_a_downscaled_copy():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (1500, 2000, 3), dtype=np.uint8)
    maps = np.zeros((4, 1500, 2000), np.float32)
    maps[1, 700:720, 900:930] = 0.9
    attention = np.ones((1500, 2000), np.float32) * 0.5
    tracemalloc.start()
    drawn = render_overlay(image, maps, attention, max_pixels=120_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert drawn.shape[0] * drawn.shape[1] <= 120_000 and drawn.shape[2] == 3
    # Drawn at full size this took 156 MB of float32 copies (measured); limited, about the photograph's 9 MB.
    assert peak < 20_000_000, peak
    # The haemorrhage is still drawn (in its colour) at the scaled position.
    y, x = round(710 * drawn.shape[0] / 1500), round(915 * drawn.shape[1] / 2000)
    assert np.abs(drawn[y, x].astype(int) - image[710, 915].astype(int)).sum() > 0


def test_predictor_maps_respect_the_limit(tiny_checkpoint, tmp_path):
    photo = _big_photo(tmp_path / "p.jpg", 1600, 1200)
    full = Predictor.from_checkpoint(tiny_checkpoint).predict(photo)
    limited = Predictor.from_checkpoint(tiny_checkpoint, map_max_pixels=200_000).predict(photo)
    assert full.lesion_probs.shape == (4, 1200, 1600)
    h, w = draw_shape((1200, 1600), 200_000)
    assert limited.lesion_probs.shape == (4, h, w) and limited.attention.shape == (h, w)
    assert limited.fov_mask.shape == (h, w)
    assert limited.grade == full.grade and limited.to_json()["lesions"] == full.to_json()["lesions"]
    # Same maps, only coarser.
    shrunk = cv2.resize(full.attention, (w, h), interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk - limited.attention).mean() < 0.02


def test_predict_command_draws_within_the_limit(tiny_checkpoint, tmp_path, monkeypatch):
    photo = _big_photo(tmp_path / "p.jpg", 1600, 1200)
    monkeypatch.setenv("DRGNET_DRAW_MAX_PIXELS", "300000")
    result = CliRunner().invoke(
        app, ["predict", str(photo), "--checkpoint", str(tiny_checkpoint), "--overlay", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    h, w = cv2.imread(str(tmp_path / "p_overlay.png")).shape[:2]
    assert (h, w) == draw_shape((1200, 1600), 300_000)


def _peak_mb(cmd: list[str], env: dict[str, str]) -> float:
    probe = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); assert r.returncode == 0; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.split()[-1]) / 1024


@pytest.mark.slow
def test_peak_memory_of_predict_with_overlay_drops_with_the_limit(tiny_checkpoint, tmp_path):
    """A 7.7-megapixel photograph with and without a small limit, each in a fresh process."""
    photo = _big_photo(tmp_path / "p.jpg", 3200, 2400)
    cmd = [sys.executable, "-m", "drgnet.cli", "predict", str(photo), "--checkpoint", str(tiny_checkpoint)]
    cmd += ["--overlay", str(tmp_path / "o")]
    base = {**os.environ, "OMP_NUM_THREADS": "1"}
    unlimited = _peak_mb(cmd, {**base, "DRGNET_DRAW_MAX_PIXELS": str(10**9)})
    limited = _peak_mb(cmd, {**base, "DRGNET_DRAW_MAX_PIXELS": "500000"})
    # Full-size maps and overlay of 7.7 MP: 4 float32 lesion maps (123 MB) plus float32 copies of the picture.
    print(f"peak RSS {unlimited:.0f} MB unlimited, {limited:.0f} MB limited")
    assert limited < unlimited - 150, (limited, unlimited)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0
