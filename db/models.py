"""SQLAlchemy 2.0 models: the tables of DRG-Net's database.

Every table is created by the Alembic migrations in ``db/migrations``; ``tests/db`` proves that the migrated schema
equals this metadata on SQLite and PostgreSQL.

Conventions:

- Enumerations are stored as short strings guarded by CHECK constraints (no native PostgreSQL enum types, so adding a
  value is a plain migration on both backends).
- Timestamps are timezone-aware and in UTC on both backends (:class:`UTCDateTime`).
- JSON columns use JSONB on PostgreSQL and JSON text on SQLite.
- Artifact columns hold sha256 hex digests of files in the content-addressed store (:mod:`db.artifacts`); image rows
  hold the path of the stored photograph relative to the data directory.
- ICDR grades are 0-4; the range is repeated here because ``db`` imports nothing from ``drgnet`` (DESIGN.md §2).
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

#: Stable constraint and index names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: JSON documents: JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")

SHA256_LENGTH = 64


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is stored in UTC and always read back timezone-aware.

    PostgreSQL keeps the zone itself (``timestamptz``); SQLite has no zone support, so values are converted to UTC
    before they are written and marked UTC when read. Naive datetimes are refused: they are ambiguous.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; pass a timezone-aware one (e.g. UTC)")
        value = value.astimezone(UTC)
        # SQLite stores the text without a zone: write UTC wall time so that text comparisons order correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Role(enum.StrEnum):
    """What a user may do: clinicians review and annotate; admins also manage users and model versions."""

    CLINICIAN = "clinician"
    ADMIN = "admin"


class Eye(enum.StrEnum):
    """Which eye a fundus photograph shows."""

    LEFT = "left"
    RIGHT = "right"
    UNKNOWN = "unknown"


class AnnotationKind(enum.StrEnum):
    """How much of an image a clinician's annotation covers.

    ``grade-only``: a grade, no lesion masks. ``partial``: strokes on some lesion maps (painted = present,
    erased = absent, untouched = unknown). ``full``: complete lesion masks. ``ungradable``: the photograph cannot be
    graded (no grade).
    """

    GRADE_ONLY = "grade-only"
    PARTIAL = "partial"
    FULL = "full"
    UNGRADABLE = "ungradable"


class ModelStatus(enum.StrEnum):
    """Life cycle of a model version: at most one is ``active`` at any time."""

    CANDIDATE = "candidate"
    #: Passed the hold-out gate; serves nobody until an admin approves it (or rejects it), with a reason.
    AWAITING_APPROVAL = "awaiting-approval"
    ACTIVE = "active"
    REJECTED = "rejected"
    RETIRED = "retired"


class JobStatus(enum.StrEnum):
    """Life cycle of a background job."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class HoldoutPurpose(enum.StrEnum):
    """What a registered reference set is for.

    ``holdout``: the frozen set the retraining gate evaluates on, never trained on. ``healthy-replay``: real
    photographs of healthy eyes that retraining mixes into every batch, so a batch of corrected DR cases cannot
    teach "this camera means disease".
    """

    HOLDOUT = "holdout"
    HEALTHY_REPLAY = "healthy-replay"


def _enum(cls: type[enum.StrEnum], name: str, length: int = 16) -> Enum:
    # Strings with a CHECK constraint named ck_<table>_<name>; values (not member names) go into the database.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


class Base(DeclarativeBase):
    """Declarative base of all DRG-Net tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType, list[Any]: JSONType}


class User(Base):
    """Someone who signs in to the review app."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    #: argon2id hash in PHC string format; the password itself is never stored or logged.
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Set when an admin resets the password: the next sign-in leads only to the change-password page.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    def __repr__(self) -> str:
        return f"User(id={self.id}, username={self.username!r}, role={self.role!s}, active={self.active})"


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


class ThrottleScope(enum.StrEnum):
    """What failed sign-ins are counted against: the account named, or the client (network address) trying."""

    ACCOUNT = "account"
    CLIENT = "client"


class LoginThrottle(Base):
    """Failed sign-ins of one account or one client, so every app process sees the same delays and lockouts.

    A row for a user name that does not exist is kept like any other, so the answer never reveals whether a name exists.
    """

    __tablename__ = "login_throttle"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[ThrottleScope] = mapped_column(_enum(ThrottleScope, "scope"))
    #: The user name as typed (scope ``account``) or the client's address (scope ``client``).
    key: Mapped[str] = mapped_column(String(255))
    #: Failed attempts counted so far (attempts refused during a delay are not counted: no password was checked).
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column()
    #: Set when ``failures`` reached the lockout limit; only an admin clears it (Users page, ``drgnet user unlock``).
    locked_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (UniqueConstraint("scope", "key"),)

    def __repr__(self) -> str:
        locked = self.locked_at is not None
        return f"LoginThrottle({self.scope!s}:{self.key!r}, failures={self.failures}, locked={locked})"


class UserSession(Base):
    """A signed-in browser session; the browser holds a random token, the database only its sha256."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(SHA256_LENGTH), unique=True)
    #: The client address at sign-in, for the audit trail.
    client: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Last page run; a session idle for longer than the configured time is expired.
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()
    #: Why it ended: ``logout``, ``idle``, ``expired``, ``disabled``, ``password``.
    revoked_reason: Mapped[str | None] = mapped_column(String(32))

    user: Mapped[User] = relationship()

    def __repr__(self) -> str:
        return f"UserSession(id={self.id}, user_id={self.user_id}, revoked={self.revoked_reason!r})"


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


class AppSetting(Base):
    """A setting an admin changes at run time (automatic promotion, who may upload ...); changes are audited."""

    __tablename__ = "app_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AppendOnlyError(RuntimeError):
    """Raised when code tries to change or delete a row of an append-only table."""


def _refuse_change(mapper: Any, connection: Any, target: Any) -> None:
    raise AppendOnlyError(
        f"{type(target).__name__} rows are append-only; record a new one instead of changing or deleting #{target.id}"
    )


for _cls in (Annotation, AuditEntry, Holdout, HoldoutImage):
    event.listen(_cls, "before_update", _refuse_change)
    event.listen(_cls, "before_delete", _refuse_change)

#: Tables whose rows the database itself refuses to change or delete (triggers; migration 0002 adds them for the
#: annotations and the audit log, 0003 for the frozen hold-outs).
APPEND_ONLY_TABLES = (
    Annotation.__tablename__,
    AuditEntry.__tablename__,
    Holdout.__tablename__,
    HoldoutImage.__tablename__,
)
#: PostgreSQL trigger function shared by those tables' triggers.
APPEND_ONLY_FUNCTION = "drgnet_refuse_change"


def append_only_ddl(dialect: str, table: str) -> list[str]:
    """The statements that make ``table`` append-only on ``dialect`` (``sqlite`` or ``postgresql``).

    Both backends raise an integrity error (SQLite: ``RAISE(ABORT)``; PostgreSQL: SQLSTATE 23001 restrict_violation),
    so SQLAlchemy reports a refused change as :class:`sqlalchemy.exc.IntegrityError` everywhere. The migration holds a
    frozen copy of these statements; ``tests/security`` proves the two agree.
    """
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER trg_{table}_no_{verb.lower()} BEFORE {verb} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
            for verb in ("UPDATE", "DELETE")
        ]
    if dialect == "postgresql":
        return [
            f"CREATE TRIGGER trg_{table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {APPEND_ONLY_FUNCTION}()",
            f"CREATE TRIGGER trg_{table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {APPEND_ONLY_FUNCTION}()",
        ]
    return []


#: The PostgreSQL function the triggers call; TG_TABLE_NAME / TG_OP name what was refused.
APPEND_ONLY_FUNCTION_SQL = f"""CREATE OR REPLACE FUNCTION {APPEND_ONLY_FUNCTION}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
END
$$"""


def _install_append_only(table: Any, connection: Any, **kw: Any) -> None:
    # Databases made with create_all (tests, tools) enforce the same promise as migrated ones.
    # text(), not exec_driver_sql: psycopg would read the function's '%' as placeholders.
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(text(APPEND_ONLY_FUNCTION_SQL))
    for statement in append_only_ddl(dialect, table.name):
        connection.execute(text(statement))


for _cls in (Annotation, AuditEntry, Holdout, HoldoutImage):
    event.listen(_cls.__table__, "after_create", _install_append_only)
