"""Fixtures of the feedback tests: databases on SQLite and PostgreSQL (as in tests/db), a tiny model checkpoint,
tiny synthetic cohorts, and a database with corrected images and an active version."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from sqlalchemy import Engine, create_engine, orm, text
from sqlalchemy.engine import make_url

from db.engine import make_engine, make_sessionmaker
from db.models import Base

TINY = dict(encoder_weights=None, input_size=64, decoder_channels=(32, 16, 16, 8, 8), embed_dim=32)


def _schema_url(base_url: str, schema: str) -> str:
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    query = {"options": f"-csearch_path={schema} -csynchronous_commit=off", "application_name": schema}
    return url.update_query_dict(query).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_admin(postgres_url: str) -> Iterator[Engine]:
    admin = create_engine(make_url(postgres_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    yield admin
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own: an SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'drgnet.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    admin: Engine = request.getfixturevalue("postgres_admin")
    schema = f"drgnet_fb_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _schema_url(base, schema)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND application_name = :schema"
                ),
                {"schema": schema},
            )
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'drgnet.db'}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    Base.metadata.create_all(eng, checkfirst=False)
    yield eng
    eng.dispose()


@pytest.fixture
def Session(engine: Engine) -> orm.sessionmaker[orm.Session]:  # noqa: N802 - named like the factory it is
    return make_sessionmaker(engine)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    from argon2 import PasswordHasher, profiles

    from db import repository

    monkeypatch.setattr(repository, "_hasher", PasswordHasher.from_parameters(profiles.CHEAPEST))
    monkeypatch.setattr(repository, "_dummy_hash", None)


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
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, cohort: Path) -> Path:
    """A tiny DRGNet trained for a few steps on the cohort (so it is better than random weights)."""
    from drgnet.config import ModelConfig, TrainConfig
    from drgnet.data.readers import open_dataset
    from drgnet.model import DRGNet
    from drgnet.training.data import FundusDataset
    from drgnet.training.loop import fit, seed_everything
    from drgnet.training.task import JointTask

    torch.set_num_threads(1)
    seed_everything(0)
    model = DRGNet(ModelConfig(**TINY))
    cfg = TrainConfig(model=model.config, epochs=1, batch_size=4, lr=3e-3, max_steps_per_epoch=6, data=str(cohort))
    run = tmp_path_factory.mktemp("tiny-run")
    ds = FundusDataset(open_dataset(cohort, layout="synthetic"), 64)
    fit(JointTask(model), ds, None, cfg, run, progress=False, log=lambda m: None)
    return run / "best"


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class CorrectedDB:
    Session: orm.sessionmaker[orm.Session]
    data_dir: Path
    url: str
    admin_id: int
    clinician_ids: list[int]
    image_ids: list[int]
    version_id: int


def build_corrected_db(
    Session: orm.sessionmaker[orm.Session],  # noqa: N803
    url: str,
    data_dir: Path,
    cohort: Path,
    checkpoint: Path,
    n_images: int = 6,
) -> CorrectedDB:
    """Users, the cohort's photographs, an active version and corrections of every kind."""
    from db import repository
    from db.artifacts import artifact_store
    from db.ingest import ingest_image
    from drgnet.data.readers import open_dataset
    from feedback.masks import encode_full, encode_partial
    from feedback.retrain import register_checkpoint

    reader = open_dataset(cohort, layout="synthetic")
    store = artifact_store(data_dir)
    with Session.begin() as s:
        admin = repository.create_user(s, "admin", "password123", "admin")
        doc = repository.create_user(s, "doc", "password123", "clinician")
        version = register_checkpoint(s, checkpoint, "v1", data_dir=data_dir, activate=True, replay_data=str(cohort))
        image_ids = []
        for i in range(n_images):
            sample = reader[i]
            image = ingest_image(s, png_bytes(sample.image), f"{sample.name}.png", data_dir=data_dir).image
            image_ids.append(image.id)
            kind = ("grade-only", "partial", "full")[i % 3]
            masks = {}
            if kind == "full":
                masks = {
                    "HE": store.put_png(encode_full(sample.masks[1])),
                    "MA": store.put_png(encode_full(sample.masks[0])),
                }
            elif kind == "partial":
                remove = np.zeros_like(sample.masks[1])
                remove[:10, :10] = 1
                masks = {"HE": store.put_png(encode_partial(sample.masks[1], remove))}
            repository.add_annotation(s, image.id, doc.id, kind=kind, grade=sample.grade, mask_hashes=masks)
        ids = (admin.id, doc.id, version.id)
    return CorrectedDB(Session, data_dir, url, ids[0], [ids[1]], image_ids, ids[2])


@pytest.fixture
def corrected_db(
    Session: orm.sessionmaker[orm.Session],  # noqa: N803
    db_url: str,
    data_dir: Path,
    cohort: Path,
    tiny_checkpoint: Path,
) -> CorrectedDB:
    return build_corrected_db(Session, db_url, data_dir, cohort, tiny_checkpoint)


#: Retraining parameters small enough for a test: a few steps on 64 px images.
FAST_RETRAIN = {
    "steps": 3,
    "batch_size": 4,
    "replay_per_batch": 2,
    "holdout_fraction": 0.0,
    "eval_batch_size": 12,
    # Three steps cannot change much: wide margins make the "not worse" promotion deterministic.
    "max_qwk_drop": 2.0,
    "max_aupr_drop": 1.0,
}


@pytest.fixture(scope="session")
def self_labelled_holdout(tmp_path_factory: pytest.TempPathFactory, cohort: Path, tiny_checkpoint: Path) -> Path:
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
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
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
def sqlite_corrected_db(sqlite_url: str, data_dir: Path, cohort: Path, tiny_checkpoint: Path) -> Iterator[CorrectedDB]:
    """:func:`corrected_db` on SQLite only, for tests whose logic does not depend on the backend."""
    eng = make_engine(sqlite_url)
    Base.metadata.create_all(eng)
    yield build_corrected_db(make_sessionmaker(eng), sqlite_url, data_dir, cohort, tiny_checkpoint)
    eng.dispose()
