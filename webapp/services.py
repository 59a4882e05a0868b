"""What the pages share: the cached database engine and model, stored maps, saving an annotation.

No SQL here either: everything goes through :mod:`db.repository` and :mod:`feedback`. The engine and the predictor
are ``st.cache_resource`` objects, so every session of the app shares one of each; the predictor is keyed by the
active version's checkpoint hash, so a promoted (or rolled back) version is picked up on the next page run
without restarting the app.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from db import repository
from db.artifacts import artifact_store
from db.engine import data_dir as default_data_dir
from db.engine import database_url, make_engine, make_sessionmaker
from db.models import AnnotationKind, ModelVersion
from drgnet.inference import Predictor
from drgnet.labels import LESIONS
from feedback import predictions as feedback_predictions
from feedback.masks import encode_full
from webapp.masks import merge_full

log = logging.getLogger(__name__)


@st.cache_resource(show_spinner=False)
def _sessionmaker_for(url: str) -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(url))


def sessions() -> sessionmaker[Session]:
    """The session factory of the configured database (``DRGNET_DATABASE_URL`` or SQLite in the data dir)."""
    return _sessionmaker_for(database_url().render_as_string(hide_password=False))


def data_dir() -> Path:
    """The data directory: ``DRGNET_DATA_DIR`` or ``./data``."""
    return default_data_dir()


@st.cache_resource(show_spinner="Loading the model ...", max_entries=2)
def _predictor_for(checkpoint_path: str, checkpoint_sha256: str) -> Predictor:
    # The hash is part of the cache key: a new version at the same path loads afresh.
    return Predictor.from_checkpoint(checkpoint_path)


def active_predictor(session: Session) -> tuple[Predictor | None, ModelVersion | None]:
    """The active model version and a predictor for it; ``(None, None)`` when no version is active."""
    version = repository.active_model_version(session)
    if version is None:
        return None, None
    try:  # the feedback layer's serving cache, once it exists, is the one source of the active model
        from feedback import serving  # type: ignore[attr-defined]
    except ImportError:
        serving = None
    if serving is not None and hasattr(serving, "get_predictor"):
        got = serving.get_predictor(session, data_dir())
        predictor = got[0] if isinstance(got, tuple) else got
        if isinstance(predictor, Predictor):
            return predictor, version
    return _predictor_for(version.checkpoint_path, version.checkpoint_sha256), version


@st.cache_data(show_spinner=False, max_entries=16)
def load_maps(prediction_id: int, hashes: tuple[str, ...], data_dir_str: str) -> tuple[Any, Any]:
    """Lesion probabilities ``(4, H, W)`` and attention ``(H, W)`` of a prediction (artifacts never change)."""

    class _Row:  # load_maps only reads the two hash fields
        lesion_map_hashes = dict(zip(LESIONS, hashes[:4], strict=False)) if len(hashes) >= 4 else {}
        attention_map_hash = hashes[4] if len(hashes) > 4 and hashes[4] else None

    return feedback_predictions.load_maps(_Row(), data_dir_str)  # type: ignore[arg-type]


@st.cache_data(show_spinner=False, max_entries=16)
def load_photo(image_id: int, sha256: str, path: str, data_dir_str: str) -> np.ndarray:
    """The stored photograph as RGB (cached by hash: stored photographs never change)."""

    class _Row:
        pass

    row = _Row()
    row.sha256, row.path = sha256, path  # type: ignore[attr-defined]
    return feedback_predictions.read_rgb(row, data_dir_str)  # type: ignore[arg-type]


@dataclass
class Correction:
    """What a clinician submits for one image: grade (None when ungradable), strokes per lesion and a comment."""

    grade: int | None
    ungradable: bool = False
    comment: str = ""
    #: Lesion name -> (add, remove) boolean masks at canvas resolution.
    strokes: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: Accept the predicted lesion maps as they are (stores them as the annotation's full masks).
    accept_masks: bool = False


def save_correction(
    session: Session,
    *,
    image_id: int,
    annotator_id: int,
    prediction_id: int | None,
    predicted_masks: np.ndarray | None,
    correction: Correction,
    data_dir_str: str | None = None,
) -> int:
    """Store the corrected masks as artifacts, then add one annotation (in the caller's transaction).

    Lesions the clinician painted or erased are merged onto the predicted mask at full resolution
    (:func:`webapp.masks.merge_full`) and stored as ``full`` masks in the feedback layer's encoding
    (:mod:`feedback.masks`); lesions left untouched are left out (not annotated). "Accept as is" stores all four
    predicted masks. Without strokes the annotation is ``grade-only``.

    Returns:
        The new annotation's id.
    """
    if correction.ungradable:
        annotation = repository.add_annotation(
            session,
            image_id,
            annotator_id,
            kind=AnnotationKind.UNGRADABLE,
            grade=None,
            based_on_prediction_id=prediction_id,
            comment=correction.comment or None,
        )
        return annotation.id
    edited = {k: v for k, v in correction.strokes.items() if v is not None and (v[0].any() or v[1].any())}
    masks: dict[str, Any] = {}
    if (edited or correction.accept_masks) and predicted_masks is not None:
        store = artifact_store(data_dir_str)
        for k, name in enumerate(LESIONS):
            if name not in edited and not correction.accept_masks:
                continue  # not looked at closely: left out, so it counts as not annotated (feedback/masks.py)
            add, remove = edited.get(name, (None, None))
            masks[name] = store.put_png(encode_full(merge_full(predicted_masks[k], add, remove)))
    annotation = repository.add_annotation(
        session,
        image_id,
        annotator_id,
        kind=AnnotationKind.FULL if masks else AnnotationKind.GRADE_ONLY,
        grade=correction.grade,
        mask_hashes=masks,
        based_on_prediction_id=prediction_id,
        comment=correction.comment or None,
    )
    return annotation.id


def after_annotation(session: Session) -> None:
    """Let the feedback layer decide whether enough corrections have gathered to queue a retraining."""
    try:  # the feedback layer's policy (feedback/jobs.py); without it there is nothing to do
        from feedback import jobs
    except ImportError:
        return
    if hasattr(jobs, "maybe_queue_retraining"):
        jobs.maybe_queue_retraining(session)


def queue_retraining(session: Session, actor_id: int) -> int:
    """Queue a retraining job (the feedback layer's, when it exists) and return its id."""
    try:
        from feedback import jobs
    except ImportError:
        jobs = None
    if jobs is not None and hasattr(jobs, "queue_retraining"):
        return jobs.queue_retraining(session, actor_id).id
    return repository.enqueue_job(session, "retrain", {"requested_by": actor_id}, actor_id=actor_id).id


@dataclass
class UploadOutcome:
    """One uploaded file: the image id (None if refused), whether it was new, and the reason it was refused."""

    filename: str
    image_id: int | None = None
    created: bool = False
    predicted: bool = False
    error: str | None = None


def ingest_and_predict(
    files: list[tuple[str, bytes]],
    *,
    uploaded_by_id: int,
    source: str | None = None,
    eye: str = "unknown",
) -> list[UploadOutcome]:
    """Store each file, predict it with the active model and so add it to the review queue.

    Each file has its own transaction: a bad file is reported with the reason and does not stop the others.
    DICOM files are de-identified and decoded first (``feedback.intake``); the eye in their header wins over ``eye``.
    """
    from db.ingest import ingest_image
    from feedback.intake import prepare_upload

    outcomes = []
    factory = sessions()
    ddir = data_dir()
    for name, data in files:
        outcome = UploadOutcome(filename=name)
        try:
            intake = prepare_upload(data, name)
            with factory.begin() as session:
                result = ingest_image(
                    session,
                    data,
                    intake.filename,
                    data_dir=ddir,
                    source=source or None,
                    eye=intake.eye or eye,
                    uploaded_by_id=uploaded_by_id,
                    prepared=intake.prepared,
                    acquisition_date=intake.acquisition_date,
                    device_model=intake.device_model,
                )
                outcome.image_id, outcome.created = result.image.id, result.created
                predictor, version = active_predictor(session)
                if predictor is not None and repository.latest_prediction(session, result.image.id) is None:
                    feedback_predictions.predict_and_store(
                        session,
                        result.image,
                        predictor,
                        model_version_id=version.id if version is not None else None,
                        data_dir=ddir,
                        actor_id=uploaded_by_id,
                    )
                    outcome.predicted = True
        except ValueError as exc:
            outcome.error = str(exc)
            outcome.image_id, outcome.created, outcome.predicted = None, False, False
        except Exception as exc:  # a model or disk failure on one file must not lose the others
            log.exception("upload of %s failed", name)
            outcome.error = f"{name}: could not be processed ({type(exc).__name__}: {exc})"
            outcome.image_id, outcome.created, outcome.predicted = None, False, False
        outcomes.append(outcome)
    return outcomes


def export_labels(fmt: str, mode: str, since: Any, actor_id: int) -> Any:
    """Export the corrected labels into ``<data dir>/exports/<time>-<format>-<mode>`` (audited as the admin).

    Raises:
        ValueError: an unknown format or mode.
    """
    import datetime as dt

    from feedback.export import export_dataset

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    out = data_dir() / "exports" / f"{stamp}-{fmt}-{mode}"
    with sessions().begin() as session:
        return export_dataset(session, out, format=fmt, mode=mode, since=since, data_dir=data_dir(), actor_id=actor_id)
