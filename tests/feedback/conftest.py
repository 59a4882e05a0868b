"""Fixtures of the feedback tests: the tiny model trained a few steps, tiny synthetic cohorts, and a database with
corrected images and an active version (on SQLite and PostgreSQL, through tests/conftest.py's ``db_url``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from _support_feedback import HOLDOUT_GRADES, CorrectedDB, build_corrected_db
from PIL import Image as PILImage
from sqlalchemy import orm

from db.engine import make_engine, make_sessionmaker
from db.models import Base
from drgnet.config import ModelConfig


@pytest.fixture(autouse=True)
def _cheap_hashing(cheap_password_hashing: None) -> None:
    """Every feedback test hashes passwords at argon2's cheapest parameters."""


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------ models and cohorts


@pytest.fixture(scope="session")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 labelled synthetic photographs at 96 px (hold-out and replay data)."""
    from drgnet.data import synthetic

    path = tmp_path_factory.mktemp("cohort") / "default"
    synthetic.generate_cohort(path, n=12, size=96, style="default", seed=1, workers=1, progress=False)
    return path


@pytest.fixture(scope="session")
def holdout_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 labelled synthetic photographs at 96 px holding every grade and healthy eyes (a registrable hold-out)."""
    from drgnet.data import synthetic

    path = tmp_path_factory.mktemp("holdout-cohort") / "default"
    synthetic.generate_cohort(
        path, n=len(HOLDOUT_GRADES), size=96, style="default", seed=7, grades=HOLDOUT_GRADES, workers=1, progress=False
    )
    return path


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory, cohort: Path, tiny_config: ModelConfig) -> Path:
    """The tiny DRGNet trained for a few steps on the cohort (so it is better than random weights)."""
    from drgnet.config import TrainConfig
    from drgnet.data.readers import open_dataset
    from drgnet.model import DRGNet
    from drgnet.training.data import FundusDataset
    from drgnet.training.engine import fit, seed_everything
    from drgnet.training.task import JointTask

    torch.set_num_threads(1)
    seed_everything(0)
    model = DRGNet(tiny_config)
    cfg = TrainConfig(model=model.config, epochs=1, batch_size=4, lr=3e-3, max_steps_per_epoch=6, data=str(cohort))
    run = tmp_path_factory.mktemp("tiny-run")
    ds = FundusDataset(open_dataset(cohort, layout="synthetic"), 64)
    fit(JointTask(model), ds, None, cfg, run, progress=False, log=lambda m: None)
    return run / "best"


@pytest.fixture
def corrected_db(
    Session: orm.sessionmaker[orm.Session],  # noqa: N803
    db_url: str,
    data_dir: Path,
    cohort: Path,
    trained_checkpoint: Path,
) -> CorrectedDB:
    return build_corrected_db(Session, db_url, data_dir, cohort, trained_checkpoint)


@pytest.fixture(scope="session")
def self_labelled_holdout(tmp_path_factory: pytest.TempPathFactory, cohort: Path, trained_checkpoint: Path) -> Path:
    """The cohort relabelled with the tiny model's own predictions (grades, top lesion pixels).

    On it the tiny model is perfect by construction, so any real regression of a candidate shows; the tiny model
    itself is too weakly trained for its true hold-out scores to separate it from random weights.
    """
    import csv
    import shutil

    from drgnet.data import synthetic
    from drgnet.data.readers import open_dataset
    from drgnet.inference import Predictor
    from drgnet.labels import LESIONS

    out = tmp_path_factory.mktemp("holdout") / "self"
    shutil.copytree(cohort, out)
    predictor = Predictor.from_checkpoint(trained_checkpoint)
    reader = open_dataset(out, layout="synthetic")
    grades = {}
    for sample in reader:
        prediction = predictor.predict(sample.image, source=sample.name)
        grades[sample.name] = prediction.grade
        for k, lesion in enumerate(LESIONS):
            probs = prediction.lesion_probs[k]
            cut = np.quantile(probs[prediction.fov_mask], 0.97)
            mask = ((probs >= cut) & prediction.fov_mask).astype(np.uint8) * 255
            PILImage.fromarray(mask).save(synthetic.mask_path(out, sample.name, lesion))
    with open(out / "grades.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    for row in rows[1:]:
        row[1] = str(grades[row[0]])
    with open(out / "grades.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return out


@pytest.fixture
def sqlite_corrected_db(
    sqlite_url: str, data_dir: Path, cohort: Path, trained_checkpoint: Path
) -> Iterator[CorrectedDB]:
    """:func:`corrected_db` on SQLite only, for tests whose logic does not depend on the backend."""
    eng = make_engine(sqlite_url)
    Base.metadata.create_all(eng)
    yield build_corrected_db(make_sessionmaker(eng), sqlite_url, data_dir, cohort, trained_checkpoint)
    eng.dispose()
