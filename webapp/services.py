"""What the pages share: the cached database engine and model, stored maps, saving an annotation.

No SQL here either: everything goes through :mod:`db.repository` and :mod:`feedback`. The engine and the predictor
are ``st.cache_resource`` objects, so every session of the app shares one of each; the predictor is keyed by the
active version's checkpoint hash, so a promoted (or rolled back) version is picked up on the next page run
without restarting the app.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable, Mapping
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
from db.models import AnnotationKind, Image, ModelVersion, Prediction
from drgnet.inference import Predictor
from drgnet.labels import LESIONS
from feedback import jobs, serving, settings
from feedback import predictions as feedback_predictions
from feedback.display import DisplayPictures, ensure_display, load_display, photo_display
from feedback.export import export_dataset
from feedback.masks import encode_full
from feedback.uploads import Progress, UploadOutcome, store_then_predict
from webapp.cache import ByteLRU
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


def active_predictor(session: Session) -> tuple[Predictor | None, ModelVersion | None]:
    """The active model version and a predictor for it; ``(None, None)`` when no version is active.

    The feedback layer's serving cache is the one source of the active model: it reloads the checkpoint after a
    promotion or rollback, and checks the weights against the sha256 the database holds.
    """
    return serving.get_active(session, data_dir())


#: Decoded pictures kept between page runs, bounded in bytes (``DRGNET_APP_CACHE_MB``, default 768): display
#: derivatives (~5 MB a photograph) and, for the zoomed editor and saving, full-size photographs and masks.
_CACHE_MB = int(os.environ.get("DRGNET_APP_CACHE_MB", "768"))
display_cache = ByteLRU(_CACHE_MB * 1024 * 1024 // 4)
full_cache = ByteLRU(_CACHE_MB * 1024 * 1024 * 3 // 4)


def derivatives_enabled() -> bool:
    """False with ``DRGNET_REVIEW_DERIVATIVES=0``: the review page as it was before derivatives (full-size files
    decoded, no prefetch), kept as the baseline of ``drgnet bench review``."""
    return os.environ.get("DRGNET_REVIEW_DERIVATIVES", "1") != "0"


def display_pictures(image: Image, prediction: Prediction | None, factory: sessionmaker[Session] | None = None) -> Any:
    """The review page's pictures of an image: display-size photo, lesion maps and attention (cached).

    A prediction stored before derivatives existed gets them now, once, recorded in its row.
    """
    ddir = str(data_dir())
    if not derivatives_enabled():
        key = ("full", image.id, prediction.id if prediction else None)
        return display_cache.get_or_make(key, lambda: _full(image, prediction, ddir))
    if prediction is None:
        return display_cache.get_or_make(
            ("photo", image.sha256), lambda: load_display(photo_display(image, ddir), ddir)
        )
    if prediction.display_hashes:
        doc = dict(prediction.display_hashes)
        return display_cache.get_or_make(("display", prediction.id), lambda: load_display(doc, ddir))

    def make() -> Any:
        with (factory or sessions()).begin() as session:
            row = repository.get_prediction(session, prediction.id)
            if row is None:
                raise repository.NotFoundError(f"prediction {prediction.id} is gone")
            doc = ensure_display(session, row, row.image, ddir)
        return load_display(doc, ddir)

    return display_cache.get_or_make(("display", prediction.id), make)


def _full(image: Image, prediction: Prediction | None, ddir: str) -> Any:
    # The path before derivatives: every picture at the photograph's full size.
    photo = feedback_predictions.read_rgb(image, ddir)
    lesions = attention = None
    if prediction is not None:
        probs, att = feedback_predictions.load_maps(prediction, ddir)
        lesions = None if probs is None else feedback_predictions.encode_map(probs)
        attention = None if att is None else feedback_predictions.encode_map(att)
    return DisplayPictures(photo, lesions, attention)


def full_photo(image: Image) -> np.ndarray:
    """The stored photograph at full resolution (for the zoomed editor; cached, bounded in bytes)."""
    ddir = str(data_dir())
    return full_cache.get_or_make(("photo", image.sha256), lambda: feedback_predictions.read_rgb(image, ddir))


def predicted_masks(prediction: Prediction) -> np.ndarray | None:
    """``(4, H, W)`` bool predicted lesion masks (probability >= 0.5) at full resolution (cached)."""
    ddir = str(data_dir())

    def make() -> np.ndarray | None:
        hashes = prediction.lesion_map_hashes or {}
        if not all(n in hashes for n in LESIONS):
            return None
        store = artifact_store(ddir)
        # One lesion at a time: the float map of a 12-megapixel photograph is 48 MB, the mask 12 MB.
        return np.stack([feedback_predictions.decode_map(store.get_map(hashes[n])) >= 0.5 for n in LESIONS])

    return full_cache.get_or_make(("masks", prediction.id), make)


def prefetch(
    image_id: int, factory: sessionmaker[Session], warm: Callable[[Image, Prediction | None, Any], None] | None = None
) -> threading.Thread:
    """Decode the display pictures of ``image_id`` in the background, so "Next" finds them cached.

    ``warm(image, prediction, pictures)``, if given, runs next in the same thread (the page draws what it will show).
    """

    def run() -> None:
        try:
            with factory() as session:
                image = repository.get_image(session, image_id)
                prediction = repository.latest_prediction(session, image_id)
                if image is None:
                    return
                if prediction is not None:
                    prediction.image  # noqa: B018 - loaded now, used after the session closes
            pictures = display_pictures(image, prediction, factory)
            if warm is not None:
                warm(image, prediction, pictures)
        except Exception:  # a prefetch that fails costs nothing: the page loads the pictures itself
            log.debug("prefetch of image %s failed", image_id, exc_info=True)

    thread = threading.Thread(target=run, name=f"prefetch-{image_id}", daemon=True)
    thread.start()
    return thread


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
    jobs.maybe_queue_retraining(session)


def queue_retraining(session: Session, actor_id: int) -> int:
    """Queue a retraining job (or find the one already waiting) and return its id."""
    return jobs.queue_retraining(session, actor_id).id


#: Why a clinician sees no upload form: photographs (and the corrections that follow) can retrain the model.
UPLOAD_REFUSED = (
    "Only admins upload photographs here; an admin can let clinicians upload "
    "(setting clinicians_may_upload, Models page)."
)


def ingest_and_predict(
    files: list[tuple[str, bytes]],
    *,
    uploaded_by_id: int,
    source: str | None = None,
    eye: str = "unknown",
    on_progress: Progress | None = None,
) -> list[UploadOutcome]:
    """Store each file (committed at once), then grade it with the active model outside any transaction.

    See :func:`feedback.uploads.store_then_predict`: a bad file is reported with the reason and does not stop the
    others, and no other clinician's save waits while the model runs.

    Raises:
        PermissionError: the user may not upload (only admins, unless an admin allowed clinicians).
    """
    factory = sessions()
    with factory() as session:
        user = repository.get_user_by_id(session, uploaded_by_id)
        if user is None or not settings.may_upload(session, user):
            raise PermissionError(UPLOAD_REFUSED)
    return store_then_predict(
        factory,
        files,
        get_predictor=active_predictor,
        uploaded_by_id=uploaded_by_id,
        data_dir=data_dir(),
        source=source,
        eye=eye,
        on_progress=on_progress,
    )


def export_labels(fmt: str, mode: str, since: Any, actor_id: int) -> Any:
    """Export the corrected labels into ``<data dir>/exports/<time>-<format>-<mode>`` (audited as the admin).

    Raises:
        ValueError: an unknown format or mode.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    out = data_dir() / "exports" / f"{stamp}-{fmt}-{mode}"
    with sessions().begin() as session:
        return export_dataset(session, out, format=fmt, mode=mode, since=since, data_dir=data_dir(), actor_id=actor_id)
