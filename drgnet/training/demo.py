"""The demo: the shipped base model at once, or (``--retrain``) a small DRGNet trained on a synthetic cohort.

``make demo`` calls :func:`ensure_demo_model`: by default it trains nothing and returns the base model
(``models/drgnet-base``, :mod:`drgnet.base_model`) with a few synthetic photographs to seed the review app with.
``drgnet demo --retrain`` trains the small demo model (:func:`train_demo_model`: a few minutes on 2 CPU cores);
the cache is keyed by the recipe below: change it and the next run retrains.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drgnet.base_model import base_checkpoint, shipped_metrics
from drgnet.config import to_dict
from drgnet.data import synthetic
from drgnet.training.pipeline import train
from drgnet.training.presets import get_preset

#: Synthetic photographs the review app is seeded with next to the base model (unseen by it: another seed).
PHOTOS: dict[str, Any] = {"n": 30, "size": 1024, "style": "default", "seed": 7}
#: Where the photographs of a model's seeding lie inside a cohort folder (IDRiD-style layout).
IMAGES = "1. Original Images"

#: What the small demo model trains on and for how long. Part of the cache key.
RECIPE: dict[str, Any] = {
    "cohort": {"n": 240, "size": 288, "style": "default", "seed": 7},
    "preset": "demo",
    "epochs": 6,
    "max_steps_per_epoch": 16,
}


def cohort_is_current(manifest: Path, wanted: dict[str, Any]) -> bool:
    """Whether the cohort behind ``manifest`` was drawn with ``wanted`` by the current generator revision.

    A cohort from an older revision is redrawn: its pictures differ, not just the model trained on them.
    """
    have = json.loads(manifest.read_text()) if manifest.is_file() else {}
    same_spec = {k: have.get(k) for k in wanted} == wanted
    return same_spec and have.get("generator_revision") == synthetic.GENERATOR_REVISION


def _recipe_key() -> dict[str, Any]:
    cfg = get_preset(RECIPE["preset"])
    # A new generator revision paints other photographs from the same seeds: the cached model is then stale.
    return {"recipe": RECIPE, "config": to_dict(cfg), "generator": synthetic.GENERATOR_REVISION}


@dataclass(frozen=True)
class DemoModel:
    """What the demo serves: a checkpoint, its test metrics, photographs to seed the app with, a version name."""

    checkpoint: Path
    metrics: dict[str, Any]
    photographs: Path  # folder of synthetic photographs the model did not train on (or its cohort's tail)
    name: str  # model version name in the app: "drgnet-base" or "demo"
    metrics_of: str = "test split"  # which photographs `metrics` are of


def ensure_demo_model(data_dir: Path, retrain: bool = False, log: Callable[[str], None] = print) -> DemoModel:
    """The base model and seeding photographs (no training), or with ``retrain`` the small model trained afresh."""
    data_dir = Path(data_dir)
    if retrain:
        checkpoint, metrics = train_demo_model(data_dir, retrain=True, log=log)
        return DemoModel(checkpoint, metrics, data_dir / "demo-cohort" / IMAGES, "demo")
    checkpoint = base_checkpoint()
    log(f"using the base model {checkpoint} (no training; `drgnet demo --retrain` trains the small demo model)")
    photos = data_dir / "demo-photos"
    ensure_cohort(photos, PHOTOS, log)
    # The metrics stored with the base model are of the synthetic validation split (its model card has the rest).
    return DemoModel(checkpoint, shipped_metrics(), photos / IMAGES, "drgnet-base", "synthetic validation split")


def ensure_cohort(cohort: Path, spec: dict[str, Any], log: Callable[[str], None] = print) -> None:
    """Draw the synthetic cohort ``spec`` (n, size, style, seed) into ``cohort`` unless it is there and current."""
    wanted = {k: spec[k] for k in ("n", "size", "style", "seed")}
    if not cohort_is_current(Path(cohort) / "manifest.json", wanted):
        log(f"generating the synthetic demo cohort in {cohort}")
        synthetic.generate_cohort(cohort, **wanted, progress=True)
        synthetic.write_preview(Path(cohort) / "preview.png", size=320, style=spec["style"], seed=spec["seed"])


def train_demo_model(
    data_dir: Path, retrain: bool = False, log: Callable[[str], None] = print
) -> tuple[Path, dict[str, Any]]:
    """Return ``(checkpoint folder, test metrics)`` of the small demo model, training it first if needed."""
    data_dir = Path(data_dir)
    cohort = data_dir / "demo-cohort"
    run = data_dir / "demo-model"
    key_file = run / "demo.json"
    key = _recipe_key()
    best = run / "best"
    if not retrain and key_file.is_file() and (best / "checkpoint.json").is_file():
        if json.loads(key_file.read_text()) == key:
            log(f"reusing cached demo model {best}")
            metrics_file = run / "test_metrics.json"
            return best, json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        log("demo recipe changed: retraining")

    ensure_cohort(cohort, RECIPE["cohort"], log)
    cfg = dataclasses.replace(
        get_preset(RECIPE["preset"]),
        data=str(cohort),
        epochs=RECIPE["epochs"],
        max_steps_per_epoch=RECIPE["max_steps_per_epoch"],
    )
    log(f"training the demo model in {run}")
    _, test_metrics = train(cfg, run, resume=False, progress=True, log=log)
    key_file.write_text(json.dumps(key, indent=2) + "\n")
    return best, test_metrics
