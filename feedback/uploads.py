"""Uploaded photographs: stored first (one short transaction each), then graded outside any transaction.

Predicting a 12-megapixel photograph takes seconds; holding the database's write lock meanwhile (SQLite has one for
the whole file) would make every other clinician's save wait. So each file is ingested and committed, the model
runs with no transaction open, its maps and display derivatives are written to the content-addressed store, and a
second short transaction adds the prediction row.
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db import repository
from db.ingest import ingest_image
from drgnet.data.preprocess import load_rgb
from feedback.display import make_display
from feedback.intake import prepare_upload
from feedback.predictions import read_rgb, store_maps, store_prediction

log = logging.getLogger(__name__)

#: ``(session) -> (predictor or None, model version or None)``: the active model, looked up by the caller's rules.
PredictorLookup = Callable[[Session], tuple[Any, Any]]
#: ``(done, total, filename, stage)`` with stage one of "storing", "grading", "done".
Progress = Callable[[int, int, str, str], None]


@dataclass
class UploadOutcome:
    """One uploaded file: the image id (None if refused), whether it was new and graded, and why not."""

    filename: str
    image_id: int | None = None
    created: bool = False
    predicted: bool = False
    error: str | None = None
    #: Stored, but grading failed (the photograph waits in the queue ungraded).
    warning: str | None = None


def store_then_predict(
    factory: sessionmaker[Session],
    files: Sequence[tuple[str, bytes]],
    *,
    get_predictor: PredictorLookup,
    uploaded_by_id: int,
    data_dir: str | os.PathLike[str] | None = None,
    source: str | None = None,
    eye: str = "unknown",
    on_progress: Progress | None = None,
) -> list[UploadOutcome]:
    """Store each file, then grade it with the active model; a bad file is reported and does not stop the others.

    DICOM files are de-identified and decoded first (:mod:`feedback.intake`); the eye in their header wins over
    ``eye``.
    """
    report = on_progress or (lambda *_: None)
    actor = uploaded_by_id
    with factory() as session:
        predictor, version = get_predictor(session)
    outcomes = []
    for i, (name, data) in enumerate(files):
        outcome = UploadOutcome(filename=name)
        outcomes.append(outcome)
        report(i, len(files), name, "storing")
        try:
            # Decoded (and a DICOM file de-identified) once: the stored pixels are the ones the model sees.
            intake = prepare_upload(data, name)
        except ValueError as exc:
            outcome.error = str(exc)
            continue
        prepared = None
        if predictor is not None:
            # The model's own check first (is this a fundus photograph?), so a refused file leaves nothing stored.
            rgb = load_rgb(io.BytesIO(intake.prepared.png))
            try:
                prepared = (rgb, predictor.prepare(rgb, intake.filename)[0])
            except ValueError as exc:
                outcome.error = str(exc) if name == intake.filename else f"{name}: {exc}"
                continue
        try:
            with factory.begin() as session:
                result = ingest_image(
                    session,
                    data,
                    intake.filename,
                    data_dir=data_dir,
                    source=source or None,
                    eye=intake.eye or eye,
                    uploaded_by_id=actor,
                    prepared=intake.prepared,
                    acquisition_date=intake.acquisition_date,
                    device_model=intake.device_model,
                )
                outcome.image_id, outcome.created = result.image.id, result.created
                image = result.image
                needs_grade = predictor is not None and repository.latest_prediction(session, image.id) is None
                session.expunge(image)
        except ValueError as exc:
            outcome.error = str(exc)
            outcome.image_id, outcome.created = None, False
            continue
        except Exception as exc:  # a disk failure on one file must not lose the others
            log.exception("upload of %s failed", name)
            outcome.error = f"{name}: could not be stored ({type(exc).__name__}: {exc})"
            outcome.image_id, outcome.created = None, False
            continue
        if not needs_grade:
            report(i + 1, len(files), name, "done")
            continue
        report(i, len(files), name, "grading")
        try:
            outcome.predicted = _grade(factory, image, predictor, version, data_dir, actor, prepared)
        except Exception as exc:  # the photograph is stored; it waits in the queue ungraded
            log.exception("grading %s failed", name)
            outcome.warning = f"{name}: stored, but grading failed ({type(exc).__name__}: {exc})"
        report(i + 1, len(files), name, "done")
    return outcomes


def _grade(
    factory: sessionmaker[Session],
    image: Any,
    predictor: Any,
    version: Any,
    data_dir: str | os.PathLike[str] | None,
    actor_id: int,
    prepared: tuple[Any, Any] | None,
) -> bool:
    # No transaction is open while the model runs and the files are written.
    start = time.perf_counter()
    if prepared is not None and prepared[0].shape[:2] == (image.height, image.width):
        rgb = prepared[0]
        pred = predictor.predict_prepared([prepared[1]])[0]
    else:  # the stored photograph differs from the upload as decoded (orientation): predict what is stored
        rgb = read_rgb(image, data_dir)
        pred = predictor.predict(rgb, source=image.original_filename)
    latency_ms = (time.perf_counter() - start) * 1000.0
    hashes = store_maps(pred, data_dir)
    display = make_display(rgb, pred.lesion_probs, pred.attention, data_dir)
    with factory.begin() as session:
        if repository.latest_prediction(session, image.id) is not None:
            return False  # another upload of the same photograph graded it meanwhile
        store_prediction(
            session,
            image,
            pred,
            model_version_id=getattr(version, "id", None),
            data_dir=data_dir,
            actor_id=actor_id,
            latency_ms=latency_ms,
            map_hashes=hashes,
            display_hashes=display,
        )
    return True
