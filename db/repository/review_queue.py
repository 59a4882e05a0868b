"""The review queue: images with their latest (non-shadow) prediction, filtered, ordered and paged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from db.models import Annotation, Eye, Image, Prediction
from db.repository._common import _check_grade


@dataclass(frozen=True)
class ReviewQueueRow:
    """One image in a clinician's review queue."""

    image: Image
    #: The image's latest prediction, or None if it has not been graded by a model yet.
    prediction: Prediction | None
    #: Whether the clinician asking has annotated this image already.
    has_my_annotation: bool
    #: Annotations of the image by anyone.
    annotation_count: int


QueueOrder = Literal["newest", "oldest", "grade"]
_ORDERS = {
    "newest": (Image.id.desc(),),
    "oldest": (Image.id,),
    # Unpredicted images last, newest first within a grade.
    "grade": (Prediction.grade.is_(None), Prediction.grade.desc(), Image.id.desc()),
}


def review_queue(
    session: Session,
    user_id: int,
    *,
    unannotated_by_me: bool = False,
    min_grade: int | None = None,
    max_grade: int | None = None,
    with_prediction: bool | None = None,
    source: str | None = None,
    eye: Eye | str | None = None,
    patient_id: str | None = None,
    order: QueueOrder = "newest",
    limit: int = 50,
    offset: int = 0,
) -> list[ReviewQueueRow]:
    """Images to review, each with its latest prediction and whether ``user_id`` has annotated it.

    Args:
        user_id: The clinician the queue is for.
        unannotated_by_me: Only images this clinician has not annotated.
        min_grade: Only images whose latest predicted grade is at least this.
        max_grade: Only images whose latest predicted grade is at most this.
        with_prediction: True: only predicted images; False: only images without a prediction; None: both.
        source: Only images from this source.
        eye: Only this eye.
        patient_id: Only this (pseudonymous) patient's images.
        order: ``newest`` or ``oldest`` upload first, or ``grade``: highest predicted grade first (unpredicted
            last), newest first within a grade.
        limit: Page size.
        offset: Rows to skip (paging).
    """
    # Shadow predictions (models that are not the active one) never show in or order the worklist.
    latest = (
        select(Prediction.image_id, func.max(Prediction.id).label("prediction_id"))
        .where(Prediction.shadow.is_(False))
        .group_by(Prediction.image_id)
        .subquery("latest_prediction")
    )
    mine = (
        exists()
        .where(Annotation.image_id == Image.id, Annotation.annotator_id == user_id)
        .correlate(Image)
        .label("has_my_annotation")
    )
    count = (
        select(func.count(Annotation.id))
        .where(Annotation.image_id == Image.id)
        .correlate(Image)
        .scalar_subquery()
        .label("annotation_count")
    )
    query = (
        select(Image, Prediction, mine, count)
        .outerjoin(latest, latest.c.image_id == Image.id)
        .outerjoin(Prediction, Prediction.id == latest.c.prediction_id)
    )
    if unannotated_by_me:
        query = query.where(
            ~exists().where(Annotation.image_id == Image.id, Annotation.annotator_id == user_id).correlate(Image)
        )
    if min_grade is not None:
        query = query.where(Prediction.grade >= _check_grade(min_grade, "min_grade"))
    if max_grade is not None:
        query = query.where(Prediction.grade <= _check_grade(max_grade, "max_grade"))
    if with_prediction is not None:
        query = query.where(Prediction.id.is_not(None) if with_prediction else Prediction.id.is_(None))
    for column, wanted in ((Image.source, source), (Image.eye, None if eye is None else Eye(eye))):
        if wanted is not None:
            query = query.where(column == wanted)
    if patient_id is not None:
        query = query.where(Image.patient_id == patient_id)
    if order not in _ORDERS:
        raise ValueError(f"unknown queue order {order!r}; choose newest, oldest or grade")
    query = query.order_by(*_ORDERS[order])
    rows = session.execute(query.limit(limit).offset(offset)).all()
    return [ReviewQueueRow(image, prediction, bool(has_mine), int(n)) for image, prediction, has_mine, n in rows]
