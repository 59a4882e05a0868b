"""Model predictions of a photograph (active and shadow), their map hashes and display derivatives."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, null, select, update
from sqlalchemy.orm import Session

from db.hashing import is_sha256
from db.models import Annotation, Image, ModelVersion, Prediction
from db.repository._common import NUM_GRADES, NotFoundError, _check_grade, _check_hashes, _json_document
from db.repository.audit import _add_audited


def add_prediction(
    session: Session,
    image_id: int,
    *,
    grade: int,
    probabilities: Sequence[float],
    model_version_id: int | None = None,
    model_name: str | None = None,
    lesion_summary: Mapping[str, Any] | None = None,
    lesion_map_hashes: Mapping[str, str] | None = None,
    attention_map_hash: str | None = None,
    latency_ms: float | None = None,
    shadow: bool = False,
    actor_id: int | None = None,
    display_hashes: Mapping[str, Any] | None = None,
) -> Prediction:
    """Record a model's prediction for an image; its maps must already be in the artifact store.

    Args:
        image_id: The graded image.
        grade: Predicted ICDR grade.
        probabilities: One probability per grade (5 values in [0, 1]).
        model_version_id: Registered model version, or None with ``model_name`` for an unregistered checkpoint.
        model_name: Free-text model identifier.
        lesion_summary: Per-lesion figures (counts, areas ...); numpy values are accepted.
        lesion_map_hashes: Lesion name -> artifact hash of its probability map.
        attention_map_hash: Artifact hash of the attention map.
        latency_ms: Inference time.
        shadow: Made by a model that is not the active version: stored for comparison, never shown in or used to
            sort the worklist (:func:`latest_prediction`, :func:`review_queue`).
        actor_id: Who requested the prediction (None: system).
        display_hashes: Display-size derivatives (:func:`set_display_hashes`), when already made.
    """
    grade = _check_grade(grade)
    probs = [float(p) for p in probabilities]
    if len(probs) != NUM_GRADES or not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probs):
        raise ValueError(f"probabilities must be {NUM_GRADES} values in [0, 1], one per ICDR grade; got {probs}")
    if model_version_id is None and not model_name:
        raise ValueError("say which model made the prediction: give model_version_id or model_name")
    if attention_map_hash is not None and not is_sha256(attention_map_hash):
        raise ValueError(f"attention_map_hash {attention_map_hash!r} is not an artifact sha256")
    if session.get(Image, image_id) is None:
        raise NotFoundError(f"no image with id {image_id}")
    prediction = Prediction(
        image_id=image_id,
        model_version_id=model_version_id,
        model_name=model_name,
        grade=grade,
        probabilities=probs,
        lesion_summary=_json_document(dict(lesion_summary or {}), "lesion_summary"),
        lesion_map_hashes=_check_hashes(lesion_map_hashes, "lesion_map_hashes"),
        attention_map_hash=attention_map_hash,
        latency_ms=None if latency_ms is None else float(latency_ms),
        # SQL NULL, not JSON null, for "none yet" (the JSON type would store a Python None as 'null').
        display_hashes=null() if display_hashes is None else _check_display(display_hashes),
        shadow=bool(shadow),
    )
    details = {
        "image_id": image_id,
        "grade": grade,
        "model_version_id": model_version_id,
        "model_name": model_name,
        "shadow": bool(shadow),
    }
    return _add_audited(session, prediction, "prediction.add", actor_id, details)


def _check_display(display: Mapping[str, Any]) -> dict[str, Any]:
    doc = dict(display)
    size = doc.pop("size", None)
    if size is not None and not (
        isinstance(size, list | tuple) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)
    ):
        raise ValueError(f"display_hashes: size {size!r} is not [width, height] in pixels")
    checked = _check_hashes(doc, "display_hashes")
    if size is not None:
        checked["size"] = [int(v) for v in size]
    return checked


def set_display_hashes(session: Session, prediction_id: int, display_hashes: Mapping[str, Any]) -> None:
    """Record the display-size derivatives of a prediction made after it was stored (in the caller's transaction).

    Derivatives are a cache of the prediction's own maps and photograph, not a new fact, so this is not audited;
    two sessions making them at once make the same files, so the last write is as good as the first.
    """
    doc = _check_display(display_hashes)
    session.execute(update(Prediction).where(Prediction.id == prediction_id).values(display_hashes=doc))


def latest_prediction(session: Session, image_id: int, *, include_shadow: bool = False) -> Prediction | None:
    """The most recent prediction for an image that clinicians see (shadow predictions only if asked), or None."""
    query = select(Prediction).where(Prediction.image_id == image_id)
    if not include_shadow:
        query = query.where(Prediction.shadow.is_(False))
    return session.scalars(query.order_by(Prediction.id.desc()).limit(1)).first()


def get_prediction(session: Session, prediction_id: int) -> Prediction | None:
    """The prediction with id ``prediction_id``, or None."""
    return session.get(Prediction, prediction_id)


def prediction_of_model(
    session: Session, image_id: int, *, model_version_id: int | None, model_name: str | None = None
) -> Prediction | None:
    """The image's first prediction by registered version ``model_version_id``, or, when that is None, by the
    unregistered model called ``model_name``; None if that model has not graded the image."""
    query = select(Prediction).where(Prediction.image_id == image_id)
    if model_version_id is not None:
        query = query.where(Prediction.model_version_id == model_version_id)
    else:
        query = query.where(Prediction.model_version_id.is_(None), Prediction.model_name == model_name)
    return session.scalars(query.order_by(Prediction.id).limit(1)).first()


def count_predictions(session: Session) -> int:
    """How many predictions the database holds (active and shadow)."""
    return int(session.scalar(select(func.count()).select_from(Prediction)) or 0)


def predictions_for_image(session: Session, image_id: int, *, include_shadow: bool = True) -> list[Prediction]:
    """All predictions for an image, oldest first (shadow ones too unless ``include_shadow`` is False)."""
    query = select(Prediction).where(Prediction.image_id == image_id)
    if not include_shadow:
        query = query.where(Prediction.shadow.is_(False))
    return list(session.scalars(query.order_by(Prediction.id)))


def expert_model_grades(session: Session, *, limit: int = 50_000) -> list[tuple[str, bool, int, int]]:
    """Every model's grade next to the clinicians' current grades of the same images (imported reference labels
    left out: the dashboard compares those on their own), for the dashboard.

    Returns:
        ``(model, shadow, expert grade, model grade)`` rows; ``model`` is the version's name or the unregistered
        checkpoint's, ``shadow`` whether the model's predictions are shadow ones. Each model counts its latest
        prediction of an image once per expert annotation.
    """
    # An annotation is current when no later annotation of the same annotator names it as its previous one.
    newer = select(Annotation.previous_id).where(Annotation.previous_id.is_not(None))
    latest = (
        select(func.max(Prediction.id).label("id"))
        .group_by(Prediction.image_id, Prediction.model_version_id, Prediction.model_name, Prediction.shadow)
        .subquery("latest_per_model")
    )
    rows = session.execute(
        select(ModelVersion.name, Prediction.model_name, Prediction.shadow, Annotation.grade, Prediction.grade)
        .join(latest, latest.c.id == Prediction.id)
        .join(Annotation, Annotation.image_id == Prediction.image_id)
        .outerjoin(ModelVersion, ModelVersion.id == Prediction.model_version_id)
        .where(Annotation.grade.is_not(None), Annotation.id.not_in(newer), Annotation.imported.is_(False))
        .limit(limit)
    ).all()
    return [(name or model_name or "?", bool(shadow), int(e), int(m)) for name, model_name, shadow, e, m in rows]
