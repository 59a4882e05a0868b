"""Clinicians' annotations (append-only, one chain per annotator and image) and unsaved review drafts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from db.models import Annotation, AnnotationKind, Image, Prediction, ReviewDraft, User, utcnow
from db.repository._common import (
    NotFoundError,
    _check_grade,
    _check_hashes,
    _enum_member,
    _json_document,
    _serialise_writes,
)
from db.repository.audit import _audit


def add_annotation(
    session: Session,
    image_id: int,
    annotator_id: int,
    *,
    kind: AnnotationKind | str,
    grade: int | None = None,
    mask_hashes: Mapping[str, Any] | None = None,
    based_on_prediction_id: int | None = None,
    comment: str | None = None,
    imported: bool = False,
) -> Annotation:
    """Append a clinician's annotation of an image.

    ``previous_id`` is set here, to the same annotator's latest annotation of the same image, so each annotator's
    opinions of an image form one chain: the image row is locked while the link is made (PostgreSQL), or the write
    lock is taken first (SQLite), and a unique constraint on ``previous_id`` would refuse a fork.

    Args:
        image_id: The annotated image.
        annotator_id: The clinician (an active user).
        kind: ``grade-only``, ``partial``, ``full`` or ``ungradable``.
        grade: ICDR grade; required unless ``kind`` is ``ungradable``, where it must be None.
        mask_hashes: Lesion name -> artifact hash of the mask (``partial`` and ``full`` need at least one).
        based_on_prediction_id: The prediction the clinician saw and corrected, if any (must be of this image).
        comment: Free text.
        imported: A reference label loaded from an existing dataset; its annotator is the dataset's reference
            account, which is disabled (nobody signs in as it), so the active check does not apply.

    Raises:
        ValueError: for an inconsistent annotation or an inactive annotator.
        NotFoundError: for an unknown image, annotator or prediction.
    """
    kind, grade, masks = _checked_content(kind, grade, mask_hashes)
    _serialise_writes(session)
    _check_annotator(session, annotator_id, imported)
    if based_on_prediction_id is not None:
        _check_prediction_of(session, based_on_prediction_id, image_id)
    # FOR NO KEY UPDATE: serialises annotations of one image without blocking foreign-key checks on it.
    locked = session.execute(
        select(Image.id).where(Image.id == image_id).with_for_update(key_share=True)
    ).scalar_one_or_none()
    if locked is None:
        raise NotFoundError(f"no image with id {image_id}")
    previous = (
        select(func.max(Annotation.id))
        .where(Annotation.image_id == image_id, Annotation.annotator_id == annotator_id)
        .scalar_subquery()
    )
    annotation = Annotation(
        image_id=image_id,
        annotator_id=annotator_id,
        grade=grade,
        kind=kind,
        mask_hashes=masks,
        based_on_prediction_id=based_on_prediction_id,
        previous_id=previous,
        comment=comment,
        imported=bool(imported),
    )
    session.add(annotation)
    session.flush()
    _audit(
        session,
        "annotation.add",
        "annotation",
        annotation.id,
        annotator_id,
        {
            "image_id": image_id,
            "kind": kind.value,
            "grade": grade,
            "previous_id": annotation.previous_id,
            "based_on_prediction_id": based_on_prediction_id,
            "imported": bool(imported),
        },
    )
    return annotation


def _checked_content(
    kind: AnnotationKind | str, grade: int | None, mask_hashes: Mapping[str, Any] | None
) -> tuple[AnnotationKind, int | None, dict[str, Any]]:
    """The annotation's kind, grade and masks, refused when they do not fit together."""
    kind = _enum_member(AnnotationKind, kind, "annotation kind")
    if kind is AnnotationKind.UNGRADABLE:
        if grade is not None:
            raise ValueError("an ungradable annotation has no grade; pass grade=None")
    elif grade is None:
        raise ValueError(f"a {kind.value} annotation needs a grade (0-4)")
    else:
        grade = _check_grade(grade)
    masks = _check_hashes(mask_hashes, "mask_hashes")
    if kind in (AnnotationKind.PARTIAL, AnnotationKind.FULL) and not masks:
        raise ValueError(f"a {kind.value} annotation needs at least one lesion mask")
    if kind in (AnnotationKind.GRADE_ONLY, AnnotationKind.UNGRADABLE) and masks:
        raise ValueError(f"a {kind.value} annotation carries no lesion masks; use kind 'partial' or 'full'")
    return kind, grade, masks


def _check_annotator(session: Session, annotator_id: int, imported: bool) -> None:
    annotator = session.get(User, annotator_id)
    if annotator is None:
        raise NotFoundError(f"no user with id {annotator_id}")
    if not annotator.active and not imported:
        raise ValueError(f"user {annotator.username!r} is disabled and cannot annotate")


def _check_prediction_of(session: Session, prediction_id: int, image_id: int) -> None:
    prediction = session.get(Prediction, prediction_id)
    if prediction is None:
        raise NotFoundError(f"no prediction with id {prediction_id}")
    if prediction.image_id != image_id:
        raise ValueError(f"prediction {prediction_id} is of image {prediction.image_id}, not of image {image_id}")


def annotations_for_image(
    session: Session, image_id: int, *, annotator_id: int | None = None, current_only: bool = False
) -> list[Annotation]:
    """Annotations of an image, oldest first.

    Args:
        annotator_id: Only this annotator's.
        current_only: Only each annotator's latest annotation (those no later annotation replaces).
    """
    query = select(Annotation).where(Annotation.image_id == image_id)
    if annotator_id is not None:
        query = query.where(Annotation.annotator_id == annotator_id)
    if current_only:
        query = query.where(_not_replaced())
    return list(session.scalars(query.order_by(Annotation.id)))


def _not_replaced() -> Any:
    # An annotation is current while no later annotation names it as its previous one.
    newer = Annotation.__table__.alias("newer")
    return ~exists(select(newer.c.id).where(newer.c.previous_id == Annotation.id))


def current_annotations(
    session: Session, image_ids: Sequence[int] | None = None, *, include_imported: bool = True
) -> list[Annotation]:
    """Each annotator's latest annotation of each image (those no later one replaces), oldest first.

    Args:
        image_ids: Only these images' (default: every image's).
        include_imported: False leaves out reference labels imported from a dataset.
    """
    query = select(Annotation).where(_not_replaced())
    if image_ids is not None:
        query = query.where(Annotation.image_id.in_(list(image_ids)))
    if not include_imported:
        query = query.where(Annotation.imported.is_(False))
    return list(session.scalars(query.order_by(Annotation.id)))


def corrections_since(session: Session, since: datetime | None) -> tuple[int, int]:
    """Clinicians' annotations saved after ``since`` (all, for None) and how many accounts wrote them.

    Imported reference labels are not corrections and are not counted.
    """
    query = select(func.count(Annotation.id), func.count(func.distinct(Annotation.annotator_id))).where(
        Annotation.imported.is_(False)
    )
    if since is not None:
        query = query.where(Annotation.created_at > since)
    count, annotators = session.execute(query).one()
    return int(count), int(annotators)


def get_draft(session: Session, user_id: int, image_id: int) -> dict[str, Any] | None:
    """A clinician's unsaved correction of an image, as the review page last stored it, or None."""
    row = session.scalars(
        select(ReviewDraft).where(ReviewDraft.user_id == user_id, ReviewDraft.image_id == image_id)
    ).first()
    return None if row is None else dict(row.document)


def save_draft(session: Session, user_id: int, image_id: int, document: Mapping[str, Any]) -> None:
    """Store (or replace) a clinician's draft of an image. Not audited: a draft is not a record, the annotation is."""
    doc = _json_document(dict(document), "review draft")
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    stmt = insert(ReviewDraft).values(user_id=user_id, image_id=image_id, document=doc, updated_at=now)
    stmt = stmt.on_conflict_do_update(index_elements=["user_id", "image_id"], set_={"document": doc, "updated_at": now})
    session.execute(stmt)


def delete_draft(session: Session, user_id: int, image_id: int) -> None:
    """Drop a clinician's draft of an image (its annotation was saved, or the clinician discarded it)."""
    session.execute(delete(ReviewDraft).where(ReviewDraft.user_id == user_id, ReviewDraft.image_id == image_id))
