"""Seconds per 12-megapixel photograph for full-resolution lesion maps: tiled lesion view vs the global view.

One synthetic photograph (a 2848 px field of view on a 4288 x 2848 frame, saved as a JPEG) goes through the
whole prediction path of ``drgnet predict`` in this process, once per (engine, path): decode, field-of-view
detection and the global view, the lesion view, the network passes (global view + tiles, batched), blending,
and the maps drawn back at the photograph's 12 megapixels. Each stage is timed separately; the baseline is the
global-view path of the same engine in the same run (``lesion_fov_px = 0``: the lesion maps of the
``input_size`` view, upsampled). The weights are random: speed does not depend on them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drgnet.bench.speed import start_run
from drgnet.config import ModelConfig

#: Median diameter of a real microaneurysm as a share of the field of view's diameter (issue 14's measurement).
MEDIAN_MA_FRACTION = 0.0052
STAGES = ("decode", "preprocess", "lesion_view", "network", "blend", "full_resolution")
ENGINES = {"torch": "PyTorch (channels-last)", "onnx": "ONNX Runtime"}


@dataclass(frozen=True)
class TileBenchConfig:
    # The network (random weights): its input size is the tile side, its lesion_fov_px the lesion view's side (1024:
    # the "full" recipe's, where a median microaneurysm spans about 5 px).
    model: ModelConfig = field(default_factory=lambda: ModelConfig(encoder_weights=None, lesion_fov_px=1024))
    also_lesion_fov_px: tuple[int, ...] = ()  # further lesion-view sides to time (the resolution-speed trade)
    width: int = 4288  # the photograph: 12.2 megapixels, as a Nikon D3 fundus camera back writes
    height: int = 2848
    engines: tuple[str, ...] = ("torch", "onnx")
    threads: int = 2
    batch_size: int = 8  # pictures (global views and tiles) per network call
    repeats: int = 3  # timed runs per row after one warm-up; the median is reported
    seed: int = 0
    # A trained checkpoint to time instead of the random network (``model`` must be its config: see for_checkpoint).
    checkpoint: str = ""


def for_checkpoint(
    path: Path, sides: tuple[int, ...] = (), base: TileBenchConfig | None = None, **fields: Any
) -> TileBenchConfig:
    """The bench of a trained checkpoint: its network and its own lesion view, plus ``sides``.

    Args:
        path: the checkpoint folder.
        sides: further lesion-view sides to time (the checkpoint's own is always timed).
        base: the rest of the settings (default: the defaults); ``fields`` replace some of them.
    """
    from drgnet.config import from_dict
    from drgnet.model.checkpoint import read_checkpoint_meta

    model = from_dict(ModelConfig, read_checkpoint_meta(Path(path))["model"])
    also = tuple(s for s in sides if s != model.lesion_fov_px)
    return dataclasses.replace(
        base or TileBenchConfig(), model=model, also_lesion_fov_px=also, checkpoint=str(path), **fields
    )


def _clocks() -> np.ndarray:
    """Wall-clock and CPU seconds (all threads) now: on a loaded machine the wall clock overstates the work."""
    return np.array([time.perf_counter(), time.process_time()])


class _TimedEngine:
    """Passes calls through to an engine and adds up the wall-clock and CPU seconds spent in them."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.seconds, self.pictures = engine, np.zeros(2), 0
        self.name, self.input_size, self.model_version = engine.name, engine.input_size, engine.model_version
        self.lesion_fov_px = engine.lesion_fov_px

    def __call__(self, images: np.ndarray) -> Any:
        start = _clocks()
        out = self.engine(images)
        self.seconds += _clocks() - start
        self.pictures += len(images)
        return out


def photograph(path: Path, width: int, height: int, seed: int) -> Path:
    """A synthetic grade-2 photograph whose field of view fills the frame's height, written as a JPEG."""
    import cv2

    from drgnet.data.synthetic import generate_fundus

    side = min(width, height)
    fundus = generate_fundus(2, size=min(side, 1024), seed=seed).image
    frame = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - side) // 2, (width - side) // 2
    frame[y0 : y0 + side, x0 : x0 + side] = cv2.resize(fundus, (side, side), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path


def time_prediction(engine: Any, path: Path, lesion_fov_px: int, batch_size: int) -> dict[str, float]:
    """Seconds of each stage of one prediction (``STAGES``), the number of pictures the network saw."""
    from drgnet.data.preprocess import load_rgb, preprocess
    from drgnet.inference import PhotoInput, engine_maps, prediction_at_full_resolution
    from drgnet.tiling import attach_lesion_view, lesion_side, lesion_view

    timed = _TimedEngine(engine)
    marks = [_clocks()]
    rgb = load_rgb(path)
    marks.append(_clocks())
    pre = preprocess(rgb, engine.input_size, source=str(path))
    marks.append(_clocks())
    side = lesion_side(pre, lesion_fov_px) if lesion_fov_px else 0
    view = lesion_view(pre, rgb, side) if side else None
    pre = attach_lesion_view(pre, view)  # as Predictor.prepare hands it on
    marks.append(_clocks())
    (maps,) = engine_maps(timed, [PhotoInput(pre.image, view)], batch_size=batch_size)
    marks.append(_clocks())
    prediction = prediction_at_full_resolution(pre, maps.grade_probs, maps.lesion_probs, maps.attention)
    marks.append(_clocks())
    if prediction.lesion_probs.shape[1:] != rgb.shape[:2]:
        raise RuntimeError(f"lesion maps are {prediction.lesion_probs.shape}, not at the photograph's resolution")
    steps = np.diff(np.stack(marks), axis=0)  # (stage, wall/cpu)
    spent = dict(zip(("decode", "preprocess", "lesion_view", "maps", "full_resolution"), steps, strict=True))
    spent["network"], spent["blend"] = timed.seconds, spent.pop("maps") - timed.seconds
    row = {name: float(spent[name][0]) for name in STAGES}
    row.update({f"{name}_cpu": float(spent[name][1]) for name in STAGES})
    row.update(pictures=float(timed.pictures), lesion_side=float(side or engine.input_size))
    row["total"] = float(sum(row[s] for s in STAGES))
    row["cpu"] = float(sum(row[f"{s}_cpu"] for s in STAGES))
    return row


def _engines(cfg: TileBenchConfig, tmp: Path) -> dict[str, Any]:
    import torch

    from drgnet.engines import OnnxEngine, TorchEngine, export_onnx
    from drgnet.model import DRGNet
    from drgnet.model.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    model_cfg = cfg.model
    if cfg.checkpoint:
        model, _ = load_checkpoint(Path(cfg.checkpoint))
        checkpoint = Path(cfg.checkpoint)
    else:
        model = DRGNet(model_cfg).eval()
        checkpoint = save_checkpoint(tmp / "ckpt", model, model_cfg) if "onnx" in cfg.engines else None
    engines: dict[str, Any] = {}
    if "torch" in cfg.engines:
        engines["torch"] = TorchEngine(model, "bench", channels_last=True)
    if "onnx" in cfg.engines:
        engines["onnx"] = OnnxEngine(export_onnx(checkpoint, tmp / "drgnet.onnx").path, threads=cfg.threads)
    return engines


def run(cfg: TileBenchConfig, out: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time every engine on the tiled and the global-view path; writes ``out/tiles.md`` and ``out/tiles.json``."""
    out, machine = start_run(cfg.engines, ENGINES, cfg.model.input_size, out)
    rows = []
    with tempfile.TemporaryDirectory(prefix="drgnet-bench-tiles-") as tmp:
        photo = photograph(Path(tmp) / "photo.jpg", cfg.width, cfg.height, cfg.seed)
        for name, engine in _engines(cfg, Path(tmp)).items():
            sides = (cfg.model.lesion_fov_px, *cfg.also_lesion_fov_px)
            for path, fov_px in (("global view (baseline)", 0), *((f"tiled, lesion view {s}", s) for s in sides)):
                time_prediction(engine, photo, fov_px, cfg.batch_size)  # warm-up: allocators, kernel caches
                runs = [time_prediction(engine, photo, fov_px, cfg.batch_size) for _ in range(cfg.repeats)]
                row = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                row.update(engine=name, path=path, runs=[r["total"] for r in runs])
                rows.append(row)
                log(f"{ENGINES[name]:24s} {path:24s} {row['total']:.2f} s/photograph")
    result = {"config": json.loads(json.dumps(dataclasses.asdict(cfg))), "machine": machine, "rows": rows}
    (out / "tiles.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "tiles.md").write_text(markdown(result))
    return result


def _microaneurysm_px(side: int) -> float:
    """Pixels across a median microaneurysm on a view whose side is ``side`` (the FOV plus its margin)."""
    from drgnet.data.preprocess import FOV_MARGIN

    return MEDIAN_MA_FRACTION * side / (1.0 + FOV_MARGIN)


def markdown(result: dict[str, Any]) -> str:
    cfg, m = result["config"], result["machine"]
    megapixels = cfg["width"] * cfg["height"] / 1e6
    lines = [
        f"# Full-resolution lesion maps of a {megapixels:.1f}-megapixel photograph ({cfg['width']} x {cfg['height']})",
        "",
        f"{m['processor']}, {m['cores']} cores, {cfg['threads']} threads, torch {m['torch']}, ONNX Runtime "
        f"{m['onnxruntime']}; load average {m['load_average']:.1f} when it started (1 min, {os.cpu_count()} cores). "
        f"Network input / tile {cfg['model']['input_size']} px, "
        f"{cfg['batch_size']} pictures per call; median of {cfg['repeats']} runs after a warm-up.",
        "",
        "| engine | path | lesion maps made at | median MA (px) | pictures | "
        + " | ".join(STAGES)
        + " | total s | vs baseline | CPU s (all threads) |",
        "|---|---|---:|---:|---:|" + "---:|" * len(STAGES) + "---:|---:|---:|",
    ]
    base = {r["engine"]: r["total"] for r in result["rows"] if r["path"].startswith("global")}
    for r in result["rows"]:
        side = int(r["lesion_side"])
        lines.append(
            f"| {ENGINES[r['engine']]} | {r['path']} | {side} x {side} | {_microaneurysm_px(side):.1f} | "
            f"{int(r['pictures'])} | "
            + " | ".join(f"{r[s]:.2f} ({r[s + '_cpu']:.2f})" for s in STAGES)
            + f" | **{r['total']:.2f}** | {r['total'] / base[r['engine']]:.2f}x | {r['cpu']:.2f} |"
        )
    lines += [
        "",
        f"Median MA: the median real microaneurysm ({1000 * MEDIAN_MA_FRACTION:.1f} per mille of the field of view's "
        "diameter, measured on the four real IDRiD photographs) in pixels of the map it is found on.",
        "Stages: JPEG decode; field-of-view detection and the global view; the lesion view (crop and resample);",
        "network passes (global view and tiles); blending and probabilities; the maps drawn at the photograph's",
        "resolution (4 lesion maps and the attention, float32). Seconds are wall-clock (in brackets: CPU seconds",
        "of all threads, which a busy shared machine inflates less).",
    ]
    return "\n".join(lines) + "\n"
