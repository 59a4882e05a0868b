"""A tiny seeded app database for the web-app tests (tests may import the training code; the app may not)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

PASSWORDS = {"admin": "admin-password-1", "clinician": "clinician-password-1"}


def build_template(root: Path, n_images: int = 3) -> Path:
    """A data dir with a tiny model checkpoint, a migrated SQLite database, two accounts and predicted images."""
    from drgnet.data.synthetic import generate_cohort
    from drgnet.model import DRGNet
    from drgnet.model.checkpoint import save_checkpoint
    from drgnet.training.presets import PRESETS
    from feedback.demo_seed import seed

    torch.manual_seed(0)
    cfg = PRESETS["tiny"].model
    model = DRGNet(cfg).eval()
    checkpoint = save_checkpoint(root / "model", model, cfg, metrics={"qwk": 0.5})
    cohort = root / "cohort"
    generate_cohort(
        cohort, n_images + 1, size=128, seed=3, grades=[0, 2, 4, 1, 3, 2][: n_images + 1], workers=1, progress=False
    )
    images = sorted((cohort / "1. Original Images").glob("*.jpg"))[:n_images]  # the last one is left to upload
    data = root / "data"
    seed(
        data,
        checkpoint,
        images,
        metrics={"qwk": 0.5},
        version_name="tiny-v1",
        source="test-clinic",
        passwords=PASSWORDS,
        log=lambda _: None,
    )
    return data


def copy_data(template: Path, dest: Path) -> Path:
    """A private copy of a seeded data dir (the checkpoint path stays the template's, which does not change)."""
    shutil.copytree(template, dest)
    return dest
