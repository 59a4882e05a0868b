"""Helpers the feedback tests import (a module of its own: importing from ``conftest`` is ambiguous, as every test
folder has one): retraining parameters for tests, and a database of corrections."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import orm


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
        admin = repository.create_user(s, "admin", "mauve-otter-quietly-42", "admin")
        doc = repository.create_user(s, "doc", "mauve-otter-quietly-42", "clinician")
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


#: Grades of the tiny hold-out cohort: every ICDR grade and healthy photographs, as registration demands.
HOLDOUT_GRADES = (0, 0, 0, 1, 2, 2, 3, 4, 4, 0)


def register_holdout(
    Session: orm.sessionmaker[orm.Session],  # noqa: N803
    folder: Path,
    data_dir: Path,
    name: str = "holdout-1",
    purpose: str = "holdout",
) -> int:
    """Register a labelled folder as a frozen set (hold-out or healthy replay); returns its id."""
    from feedback import holdouts

    with Session.begin() as s:
        return holdouts.register_folder(s, name, folder, layout="synthetic", purpose=purpose, data_dir=data_dir).id


#: Retraining parameters small enough for a test: a few steps on 64 px images.
FAST_RETRAIN = {
    "steps": 3,
    "batch_size": 4,
    "replay_per_batch": 2,
    "holdout_fraction": 0.0,
    "min_holdout_images": 5,  # the tiny test hold-outs; the default (50) is for real ones
    "eval_batch_size": 12,
    # Three steps cannot change much: wide margins make the "not worse" promotion deterministic.
    "max_qwk_drop": 2.0,
    "max_aupr_drop": 1.0,
    "max_referable_drop": 1.0,
}
