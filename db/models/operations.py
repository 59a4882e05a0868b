"""Background jobs, the audit log and run-time settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.models._base import Base, JSONType, _enum, utcnow
from db.models.enums import JobStatus


class Job(Base):
    """A unit of background work (retraining, batch screening ...), claimed by one worker at a time under a lease."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus, "status"), default=JobStatus.QUEUED)
    #: 0.0 to 1.0, as last reported by the worker.
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(Text)
    #: A running job whose lease has passed belongs to a dead worker and may be claimed again.
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    #: Seconds an attempt may run from its claim; a lease is never renewed past it. NULL: no limit.
    time_limit_s: Mapped[float | None] = mapped_column(Float)
    #: When the current attempt was claimed.
    started_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_fraction"),
        CheckConstraint("max_attempts >= 1", name="max_attempts_positive"),
        Index(None, "status", "id"),
    )

    def __repr__(self) -> str:
        return f"Job(id={self.id}, kind={self.kind!r}, status={self.status!s}, attempts={self.attempts})"


class AuditEntry(Base):
    """One row per write made through the repository, in the same transaction as the write. Append-only."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Who did it; NULL for the system (command line, worker).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    #: Dotted verb, e.g. ``annotation.add``, ``model_version.promote``.
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index(None, "object_type", "object_id"),)

    def __repr__(self) -> str:
        return f"AuditEntry(id={self.id}, action={self.action!r}, {self.object_type}#{self.object_id})"


class AppSetting(Base):
    """A setting an admin changes at run time (automatic promotion, who may upload ...); changes are audited."""

    __tablename__ = "app_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
