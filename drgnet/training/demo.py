"""The demo model: a small DRGNet trained on a synthetic cohort, cached and reused.

``make demo`` calls this; the first run generates the cohort and trains (a few minutes on 2 CPU cores), later
runs find the cached checkpoint and return at once. The cache is keyed by the recipe below: change it and the
next run retrains.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drgnet.config import to_dict
from drgnet.data import synthetic
from drgnet.training.pipeline import train
from drgnet.training.presets import get_preset

#: What the demo trains on and for how long. Part of the cache key.
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


def ensure_demo_model(
    data_dir: Path, retrain: bool = False, log: Callable[[str], None] = print
) -> tuple[Path, dict[str, Any]]:
    """Return ``(checkpoint folder, test metrics)`` of the demo model, training it first if needed."""
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

    spec = RECIPE["cohort"]
    manifest = cohort / "manifest.json"
    wanted = {k: spec[k] for k in ("n", "size", "style", "seed")}
    if not cohort_is_current(manifest, wanted):
        log(f"generating the synthetic demo cohort in {cohort}")
        synthetic.generate_cohort(cohort, **wanted, progress=True)
        synthetic.write_preview(cohort / "preview.png", size=320, style=spec["style"], seed=spec["seed"])
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
