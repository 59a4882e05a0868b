"""Model versions and the frozen hold-out (and healthy replay) sets they are judged on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.models._base import SHA256_LENGTH, Base, _enum, utcnow
from db.models.enums import HoldoutPurpose, ModelStatus


class ModelVersion(Base):
    """A trained checkpoint known to the database; exactly one may be active (serving predictions)."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    #: The version this one was fine-tuned from.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    checkpoint_path: Mapped[str] = mapped_column(String(1024))
    checkpoint_sha256: Mapped[str] = mapped_column(String(SHA256_LENGTH))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[ModelStatus] = mapped_column(_enum(ModelStatus, "status", 24), default=ModelStatus.CANDIDATE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: When the version last became active; rollback picks the retired version promoted most recently.
    promoted_at: Mapped[datetime | None] = mapped_column()

    parent: Mapped[ModelVersion | None] = relationship(remote_side=[id])

    __table_args__ = (
        # The single-active invariant lives in the database, not only in code: a partial unique index.
        Index(
            "uq_model_versions_one_active",
            "status",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    def __repr__(self) -> str:
        return f"ModelVersion(id={self.id}, name={self.name!r}, status={self.status!s})"


class Holdout(Base):
    """A frozen, named set of labelled photographs: the retraining gate's hold-out, or healthy replay images.

    Frozen: rows are never changed or deleted (the models refuse it) and ``digest`` (sha256 over every member's
    photograph hash, grade and mask hashes, in order) is checked whenever the set is used, so a change made
    behind the code's back is detected. A new version of a set is a new hold-out with a new name.
    """

    __tablename__ = "holdouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    purpose: Mapped[HoldoutPurpose] = mapped_column(_enum(HoldoutPurpose, "purpose"), default=HoldoutPurpose.HOLDOUT)
    description: Mapped[str | None] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(SHA256_LENGTH))
    n_images: Mapped[int] = mapped_column(Integer)
    #: ICDR grade (as text) -> number of photographs.
    grade_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (CheckConstraint("n_images > 0", name="not_empty"),)

    def __repr__(self) -> str:
        return f"Holdout(id={self.id}, name={self.name!r}, purpose={self.purpose!s}, n_images={self.n_images})"


class HoldoutImage(Base):
    """One photograph of a :class:`Holdout`: stored in the photograph store by its sha256, never in ``images``
    (so it never reaches the worklist, and no clinician's correction of it can be trained on)."""

    __tablename__ = "holdout_images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    holdout_id: Mapped[int] = mapped_column(ForeignKey("holdouts.id"))
    position: Mapped[int] = mapped_column(Integer)
    #: sha256 of the stored metadata-free PNG (the same normalisation as an upload, so the same hash).
    image_sha256: Mapped[str] = mapped_column(String(SHA256_LENGTH))
    original_filename: Mapped[str] = mapped_column(String(255))
    #: Reference ICDR grade.
    grade: Mapped[int] = mapped_column(Integer)
    #: Lesion name -> artifact hash of the reference mask PNG (0/255); lesions without one are unknown.
    mask_hashes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Camera or site the photograph came from, when known.
    source: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        CheckConstraint("grade BETWEEN 0 AND 4", name="grade_icdr"),
        Index(None, "holdout_id", "image_sha256", unique=True),
    )
