"""Photographs, model predictions of them, clinicians' annotations and unsaved review drafts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.models._base import SHA256_LENGTH, Base, JSONType, _enum, utcnow
from db.models.accounts import User
from db.models.enums import AnnotationKind, Eye
from db.models.model_versions import ModelVersion


class Image(Base):
    """A fundus photograph as stored by :func:`db.ingest.ingest_image` (metadata stripped, orientation applied)."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: sha256 of the stored file's bytes; also names the file, so one photograph is stored once.
    sha256: Mapped[str] = mapped_column(String(SHA256_LENGTH), unique=True)
    #: Path of the stored file relative to the data directory (derived from the hash, never from client input).
    path: Mapped[str] = mapped_column(String(255))
    #: File name the client uploaded (final component only), for display.
    original_filename: Mapped[str] = mapped_column(String(255))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    eye: Mapped[Eye] = mapped_column(_enum(Eye, "eye"), default=Eye.UNKNOWN)
    #: Pseudonymous patient identifier from the screening programme; never a name.
    patient_id: Mapped[str | None] = mapped_column(String(64), index=True)
    #: Where the photograph came from (clinic, camera, batch name).
    source: Mapped[str | None] = mapped_column(String(128))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: When the photograph was taken (from a DICOM header; date only).
    acquisition_date: Mapped[date | None] = mapped_column(Date)
    #: The camera's manufacturer and model name (from a DICOM header); never its serial number.
    device_model: Mapped[str | None] = mapped_column(String(128))

    uploaded_by: Mapped[User | None] = relationship()

    __table_args__ = (CheckConstraint("width > 0 AND height > 0", name="size_positive"),)

    def __repr__(self) -> str:
        return f"Image(id={self.id}, sha256={self.sha256[:12]}..., {self.width}x{self.height}, eye={self.eye!s})"


class Prediction(Base):
    """What a model said about an image: grade, probabilities, lesion summary and the hashes of its maps."""

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    #: Free-text model identifier for checkpoints that are not registered versions (e.g. the demo model).
    model_name: Mapped[str | None] = mapped_column(String(128))
    grade: Mapped[int] = mapped_column(Integer)
    #: One probability per ICDR grade, grade 0 first.
    probabilities: Mapped[list[Any]] = mapped_column()
    #: Per lesion (MA, HE, EX, SE): counts, areas, maximum probability ... as the inference code reports them.
    lesion_summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Lesion name -> artifact hash of its probability map.
    lesion_map_hashes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attention_map_hash: Mapped[str | None] = mapped_column(String(SHA256_LENGTH))
    #: Display-size derivatives for the review page (photograph, lesion maps, attention): name -> artifact hash,
    #: plus "size" [width, height]. Made when the prediction is stored, or once on first view for older rows.
    display_hashes: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    #: Made by a model that was not the active version when it was stored (a candidate being compared, an
    #: unregistered or rejected checkpoint): kept for comparison, never shown in or used to sort the worklist.
    shadow: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    image: Mapped[Image] = relationship()
    model_version: Mapped[ModelVersion | None] = relationship()

    __table_args__ = (
        CheckConstraint("grade BETWEEN 0 AND 4", name="grade_icdr"),
        CheckConstraint("model_version_id IS NOT NULL OR model_name IS NOT NULL", name="model_known"),
    )

    def __repr__(self) -> str:
        return f"Prediction(id={self.id}, image_id={self.image_id}, grade={self.grade})"


class Annotation(Base):
    """A clinician's correction of an image. Append-only: a new opinion is a new row linked to the previous one."""

    __tablename__ = "annotations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: ICDR grade; NULL when the image is ungradable.
    grade: Mapped[int | None] = mapped_column(Integer)
    #: Lesion name -> artifact hash of the mask PNG (its encoding is the feedback layer's: see feedback/).
    mask_hashes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    kind: Mapped[AnnotationKind] = mapped_column(_enum(AnnotationKind, "kind"))
    based_on_prediction_id: Mapped[int | None] = mapped_column(ForeignKey("predictions.id"))
    #: The same annotator's previous annotation of the same image (set by the repository, never by callers).
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("annotations.id"), unique=True)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: A reference label loaded from an existing dataset (``drgnet import-labels``), not a clinician's correction.
    imported: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    image: Mapped[Image] = relationship()
    annotator: Mapped[User] = relationship()
    based_on_prediction: Mapped[Prediction | None] = relationship()
    previous: Mapped[Annotation | None] = relationship(remote_side=[id])

    __table_args__ = (
        CheckConstraint("grade IS NULL OR grade BETWEEN 0 AND 4", name="grade_icdr"),
        CheckConstraint("kind <> 'ungradable' OR grade IS NULL", name="ungradable_has_no_grade"),
        CheckConstraint("kind = 'ungradable' OR grade IS NOT NULL", name="gradable_has_grade"),
        Index(None, "image_id", "annotator_id"),
    )

    def __repr__(self) -> str:
        return (
            f"Annotation(id={self.id}, image_id={self.image_id}, annotator_id={self.annotator_id}, kind={self.kind!s})"
        )


class ReviewDraft(Base):
    """A clinician's unsaved correction of one image (grade, comment, strokes), so a browser refresh keeps it.

    Not a record of anything: overwritten as the clinician works and deleted when the annotation is saved.
    """

    __tablename__ = "review_drafts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    #: The review page's draft document (its shape is the app's; strokes are small PNGs in base64).
    document: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("user_id", "image_id"),)

    def __repr__(self) -> str:
        return f"ReviewDraft(user_id={self.user_id}, image_id={self.image_id})"
