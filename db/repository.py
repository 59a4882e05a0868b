"""Repository functions: every read and write the review app, the feedback layer and the worker make.

Each function takes a :class:`~sqlalchemy.orm.Session` and never commits: the caller owns the transaction
(``with Session.begin() as session: ...``), so several calls commit or roll back together. Every write also appends
an :class:`~db.models.AuditEntry` in the same transaction, so the audit log holds exactly the writes that committed.
The one exception is :func:`heartbeat_job`: progress reports are state, not decisions, and would flood the log.

Annotations are append-only: there is no function to change or delete one (the models refuse it too). A new
opinion is a new row; :func:`add_annotation` links it to the same annotator's previous annotation of the image.

Concurrency: job claiming uses ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL and an immediate (write-locked)
transaction on SQLite; promotions lock the model-version table, so exactly one version is ever active (a partial
unique index enforces it as well).
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import and_, case, delete, exists, func, null, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from db.hashing import is_sha256, sha256_hex
from db.models import (
    Annotation,
    AnnotationKind,
    AppSetting,
    AuditEntry,
    Eye,
    Holdout,
    HoldoutImage,
    HoldoutPurpose,
    Image,
    Job,
    JobStatus,
    ModelStatus,
    ModelVersion,
    Prediction,
    ReviewDraft,
    Role,
    User,
    UserSession,
    utcnow,
)
from db.operator import current_operator
from db.passwords import check_password_strength

NUM_GRADES = 5  # ICDR 0-4; db imports nothing from drgnet (DESIGN.md §2)
DEFAULT_LEASE_S = 300.0
DEFAULT_MAX_ATTEMPTS = 3

_USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
# argon2id with the library's defaults (RFC 9106 low-memory profile: 64 MiB, 3 passes).
_hasher = PasswordHasher()
_dummy_hash: str | None = None


class NotFoundError(LookupError):
    """A row named by id or name does not exist."""


class LeaseLostError(RuntimeError):
    """A worker reported on a job it no longer holds (its lease expired and another worker took it, or it ended)."""


# --------------------------------------------------------------------------------------------------------- helpers


def _audit(
    session: Session,
    action: str,
    object_type: str,
    object_id: int | None,
    actor_id: int | None,
    details: Mapping[str, Any] | None = None,
) -> None:
    details = dict(details or {})
    operator = current_operator()
    if operator and "operator" not in details:
        details["operator"] = operator  # the OS user of a command line, the worker's id ...
    session.add(
        AuditEntry(
            user_id=actor_id,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=_json_document(details, "audit details"),
        )
    )


def record_audit(
    session: Session,
    action: str,
    object_type: str,
    object_id: int | None = None,
    *,
    actor_id: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Audit something that is not a row write of this module (e.g. files removed by ``drgnet db gc``)."""
    _audit(session, action, object_type, object_id, actor_id, details)


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays arrive from inference code; db does not need to import numpy to accept them.
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json_document(value: Any, what: str) -> Any:
    """Round-trip through JSON so both backends store exactly the same document (and NaN is refused)."""
    try:
        return json.loads(json.dumps(value, default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} cannot be stored as JSON: {exc}") from exc


def _check_grade(grade: Any, what: str = "grade") -> int:
    try:
        value = operator.index(grade)  # ints and numpy integers; not floats, strings or bools
    except TypeError:
        value = None
    if value is None or isinstance(grade, bool) or not 0 <= value < NUM_GRADES:
        raise ValueError(f"{what} {grade!r} is not an ICDR grade (an integer 0-4)")
    return value


def _check_hashes(hashes: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    doc = _json_document(dict(hashes or {}), what)

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{where}.{key}" if where else key)
        elif not is_sha256(node):
            raise ValueError(f"{what}: {where or 'value'} = {node!r} is not an artifact sha256 (64 hex characters)")

    walk(doc, "")
    return doc


def _serialise_writes(session: Session) -> None:
    """Make the rest of this transaction see the latest data and keep other writers out until it ends.

    SQLite has one writer at a time, but the driver starts its transaction lazily at the first write, so reads
    before it may be stale; ``BEGIN IMMEDIATE`` takes the write lock up front. PostgreSQL callers lock rows instead.
    """
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        dbapi = conn.connection.dbapi_connection
        if dbapi is not None and not dbapi.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


# ----------------------------------------------------------------------------------------------------------- users


def _unknown_user_hash() -> str:
    # Verified against when the user does not exist, so a wrong user name takes as long as a wrong password.
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("not anyone's password")
    return _dummy_hash


def _hash_password(password: str, username: str) -> str:
    """The argon2id hash of a password that passes :func:`db.passwords.check_password_strength`."""
    check_password_strength(password, user_inputs=[username])
    return _hasher.hash(password)


def create_user(
    session: Session, username: str, password: str, role: Role | str, *, actor_id: int | None = None
) -> User:
    """Create an active user with an argon2id password hash.

    Raises:
        ValueError: for an invalid or taken user name, an unknown role or a weak password
            (:class:`db.passwords.WeakPasswordError`: shorter than 12 characters or easy to guess).
    """
    if not _USERNAME_RE.fullmatch(username or ""):
        raise ValueError(
            f"user name {username!r} is invalid: use 1-64 letters, digits, '.', '_', '-' or '@', "
            "starting with a letter or digit"
        )
    try:
        role = Role(role)
    except ValueError:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}") from None
    if get_user(session, username) is not None:
        raise ValueError(f"user {username!r} already exists")
    user = User(username=username, role=role, password_hash=_hash_password(password, username), active=True)
    session.add(user)
    session.flush()
    _audit(session, "user.create", "user", user.id, actor_id, {"username": username, "role": role.value})
    return user


def get_user(session: Session, username: str) -> User | None:
    """The user called ``username``, or None."""
    return session.scalars(select(User).where(User.username == username)).one_or_none()


def get_user_by_id(session: Session, user_id: int) -> User | None:
    """The user with id ``user_id``, or None."""
    return session.get(User, user_id)


def list_users(session: Session) -> list[User]:
    """All users, by name."""
    return list(session.scalars(select(User).order_by(User.username)))


def _password_matches(user: User | None, password: str) -> bool:
    """Whether ``password`` is the user's; for no user, as slow as a real check and False."""
    try:
        return _hasher.verify(user.password_hash if user is not None else _unknown_user_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def verify_password(
    session: Session, username: str, password: str, *, details: Mapping[str, Any] | None = None
) -> User | None:
    """Check a password: the user if it is right and the account active, else None.

    The attempt is audited (``user.login`` or ``user.login_failed`` with the reason, plus ``details`` such as the
    client); the password never is. An outdated hash is upgraded to the current argon2 parameters on success.
    Sign-ins go through :func:`db.accounts.sign_in`, which throttles guessing before calling this.
    """
    user = get_user(session, username)
    ok = _password_matches(user, password)
    if user is None or not ok or not user.active:
        reason = "unknown user" if user is None else ("wrong password" if not ok else "account disabled")
        _audit(
            session,
            "user.login_failed",
            "user",
            user.id if user is not None else None,
            None,
            {**(details or {}), "username": username, "reason": reason},
        )
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    _audit(session, "user.login", "user", user.id, user.id, {**(details or {}), "username": username})
    return user


def disable_user(session: Session, username: str, *, actor_id: int | None = None) -> User:
    """Disable an account: it can no longer sign in, and its past annotations stay.

    Raises:
        NotFoundError: when there is no such user.
    """
    user = get_user(session, username)
    if user is None:
        raise NotFoundError(f"no user called {username!r}")
    if user.active:
        user.active = False
        # Signed-in sessions die with the account, in the same transaction.
        session.execute(
            update(UserSession)
            .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
            .values(revoked_at=utcnow(), revoked_reason="disabled")
        )
        session.flush()
        _audit(session, "user.disable", "user", user.id, actor_id, {"username": username})
    return user


# ---------------------------------------------------------------------------------------------------------- images


def add_image(
    session: Session,
    *,
    sha256: str,
    path: str,
    original_filename: str,
    width: int,
    height: int,
    eye: Eye | str = Eye.UNKNOWN,
    patient_id: str | None = None,
    source: str | None = None,
    uploaded_by_id: int | None = None,
    acquisition_date: date | None = None,
    device_model: str | None = None,
) -> tuple[Image, bool]:
    """Record a stored photograph, or return the existing row with the same sha256.

    Use :func:`db.ingest.ingest_image` for uploads: it validates and stores the file first. Two sessions adding the
    same photograph at once both get the one row (``INSERT ... ON CONFLICT DO NOTHING``).

    Returns:
        ``(image, created)``; ``created`` is False when the photograph was already known.
    """
    if not is_sha256(sha256):
        raise ValueError(f"{sha256!r} is not a sha256 hex digest")
    try:
        eye = Eye(eye)
    except ValueError:
        raise ValueError(f"unknown eye {eye!r}; choose one of {', '.join(e.value for e in Eye)}") from None
    values = {
        "sha256": sha256,
        "path": path,
        "original_filename": original_filename[:255],
        "width": int(width),
        "height": int(height),
        "eye": eye,
        "patient_id": patient_id,
        "source": source,
        "uploaded_by_id": uploaded_by_id,
        "created_at": utcnow(),
        "acquisition_date": acquisition_date,
        "device_model": device_model[:128] if device_model else None,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(Image).values(**values).on_conflict_do_nothing(index_elements=["sha256"]).returning(Image.id)
    new_id = session.execute(stmt).scalar_one_or_none()
    image = session.scalars(select(Image).where(Image.sha256 == sha256).execution_options(populate_existing=True)).one()
    if new_id is not None:
        _audit(
            session,
            "image.add",
            "image",
            image.id,
            uploaded_by_id,
            {"sha256": sha256, "original_filename": values["original_filename"], "source": source},
        )
    return image, new_id is not None


def get_image(session: Session, image_id: int) -> Image | None:
    """The image with id ``image_id``, or None."""
    return session.get(Image, image_id)


def get_image_by_sha(session: Session, sha256: str) -> Image | None:
    """The image whose stored file has this sha256, or None."""
    return session.scalars(select(Image).where(Image.sha256 == sha256)).one_or_none()


# ----------------------------------------------------------------------------------------------------- predictions


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
    session.add(prediction)
    session.flush()
    _audit(
        session,
        "prediction.add",
        "prediction",
        prediction.id,
        actor_id,
        {
            "image_id": image_id,
            "grade": grade,
            "model_version_id": model_version_id,
            "model_name": model_name,
            "shadow": bool(shadow),
        },
    )
    return prediction


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


# ----------------------------------------------------------------------------------------------------- annotations


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
    try:
        kind = AnnotationKind(kind)
    except ValueError:
        raise ValueError(
            f"unknown annotation kind {kind!r}; choose one of {', '.join(k.value for k in AnnotationKind)}"
        ) from None
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

    _serialise_writes(session)
    annotator = session.get(User, annotator_id)
    if annotator is None:
        raise NotFoundError(f"no user with id {annotator_id}")
    if not annotator.active and not imported:
        raise ValueError(f"user {annotator.username!r} is disabled and cannot annotate")
    if based_on_prediction_id is not None:
        prediction = session.get(Prediction, based_on_prediction_id)
        if prediction is None:
            raise NotFoundError(f"no prediction with id {based_on_prediction_id}")
        if prediction.image_id != image_id:
            raise ValueError(
                f"prediction {based_on_prediction_id} is of image {prediction.image_id}, not of image {image_id}"
            )
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
        newer = Annotation.__table__.alias("newer")
        later = select(newer.c.id).where(newer.c.previous_id == Annotation.id)
        query = query.where(~exists(later))
    return list(session.scalars(query.order_by(Annotation.id)))


# ---------------------------------------------------------------------------------------------------- review queue


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
    if with_prediction is True:
        query = query.where(Prediction.id.is_not(None))
    elif with_prediction is False:
        query = query.where(Prediction.id.is_(None))
    if source is not None:
        query = query.where(Image.source == source)
    if eye is not None:
        query = query.where(Image.eye == Eye(eye))
    if patient_id is not None:
        query = query.where(Image.patient_id == patient_id)
    if order == "newest":
        query = query.order_by(Image.id.desc())
    elif order == "oldest":
        query = query.order_by(Image.id)
    elif order == "grade":
        query = query.order_by(Prediction.grade.is_(None), Prediction.grade.desc(), Image.id.desc())
    else:
        raise ValueError(f"unknown queue order {order!r}; choose newest, oldest or grade")
    rows = session.execute(query.limit(limit).offset(offset)).all()
    return [ReviewQueueRow(image, prediction, bool(has_mine), int(n)) for image, prediction, has_mine, n in rows]


# -------------------------------------------------------------------------------------------------- model versions

#: Status changes :func:`set_model_version_status` allows (promotion and rollback have their own functions).
MODEL_STATUS_CHANGES: dict[ModelStatus, frozenset[ModelStatus]] = {
    ModelStatus.CANDIDATE: frozenset({ModelStatus.ACTIVE, ModelStatus.REJECTED, ModelStatus.AWAITING_APPROVAL}),
    # Only :func:`approve_model_version` makes an awaiting version active (an admin, with a reason).
    ModelStatus.AWAITING_APPROVAL: frozenset({ModelStatus.ACTIVE, ModelStatus.REJECTED}),
    ModelStatus.ACTIVE: frozenset({ModelStatus.RETIRED, ModelStatus.REJECTED}),
    ModelStatus.RETIRED: frozenset({ModelStatus.ACTIVE, ModelStatus.REJECTED}),
    ModelStatus.REJECTED: frozenset(),
}


def _lock_model_versions(session: Session) -> None:
    # The table is small: locking all of it serialises promotions, so two at once cannot both see "no active one".
    _serialise_writes(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(ModelVersion.id).with_for_update()).all()


def add_model_version(
    session: Session,
    name: str,
    checkpoint_path: str,
    checkpoint_sha256: str,
    *,
    config: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    parent_id: int | None = None,
    actor_id: int | None = None,
) -> ModelVersion:
    """Register a trained checkpoint as a ``candidate`` version.

    Raises:
        ValueError: for a taken name or a malformed checkpoint hash.
        NotFoundError: for an unknown parent.
    """
    if not name:
        raise ValueError("a model version needs a name")
    if not is_sha256(checkpoint_sha256):
        raise ValueError(f"checkpoint_sha256 {checkpoint_sha256!r} is not a sha256 hex digest")
    if session.scalars(select(ModelVersion.id).where(ModelVersion.name == name)).first() is not None:
        raise ValueError(f"a model version called {name!r} already exists")
    if parent_id is not None and session.get(ModelVersion, parent_id) is None:
        raise NotFoundError(f"no model version with id {parent_id} (the parent)")
    version = ModelVersion(
        name=name,
        parent_id=parent_id,
        checkpoint_path=str(checkpoint_path),
        checkpoint_sha256=checkpoint_sha256,
        config=_json_document(dict(config or {}), "config"),
        metrics=_json_document(dict(metrics or {}), "metrics"),
        status=ModelStatus.CANDIDATE,
    )
    session.add(version)
    session.flush()
    _audit(
        session,
        "model_version.add",
        "model_version",
        version.id,
        actor_id,
        {"name": name, "parent_id": parent_id, "checkpoint_sha256": checkpoint_sha256},
    )
    return version


def get_model_version(session: Session, version_id: int) -> ModelVersion | None:
    """The model version with id ``version_id``, or None."""
    return session.get(ModelVersion, version_id)


def get_model_version_by_name(session: Session, name: str) -> ModelVersion | None:
    """The model version called ``name``, or None."""
    return session.scalars(select(ModelVersion).where(ModelVersion.name == name)).one_or_none()


def list_model_versions(session: Session) -> list[ModelVersion]:
    """All model versions, oldest first."""
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id)))


def active_model_version(session: Session) -> ModelVersion | None:
    """The version serving predictions, or None."""
    return session.scalars(
        select(ModelVersion).where(ModelVersion.status == ModelStatus.ACTIVE).execution_options(populate_existing=True)
    ).one_or_none()


def _fresh_version(session: Session, version_id: int) -> ModelVersion:
    version = session.get(ModelVersion, version_id, populate_existing=True)
    if version is None:
        raise NotFoundError(f"no model version with id {version_id}")
    return version


def promote_model_version(
    session: Session,
    version_id: int,
    *,
    actor_id: int | None = None,
    reason: str | None = None,
    _action: str = "model_version.promote",
) -> ModelVersion:
    """Make a version the active one; the version active until now becomes ``retired`` in the same transaction.

    Candidates and retired versions can be promoted; promoting the active version changes nothing. A version
    awaiting approval becomes active only through :func:`approve_model_version`.

    Raises:
        ValueError: when the version was rejected or awaits approval.
        NotFoundError: for an unknown version.
    """
    _lock_model_versions(session)
    target = _fresh_version(session, version_id)
    if target.status is ModelStatus.ACTIVE:
        return target
    if target.status is ModelStatus.AWAITING_APPROVAL and _action != "model_version.approve":
        raise ValueError(
            f"model version {target.name!r} awaits an admin's approval; approve it with a reason "
            "(Models page, or `drgnet model approve NAME --reason ...`)"
        )
    if ModelStatus.ACTIVE not in MODEL_STATUS_CHANGES[target.status]:
        raise ValueError(f"model version {target.name!r} is {target.status.value}; it cannot be promoted")
    current = active_model_version(session)
    if current is not None:
        current.status = ModelStatus.RETIRED
        session.flush()  # before the new one becomes active: the unique index allows one active row at a time
    target.status = ModelStatus.ACTIVE
    target.promoted_at = utcnow()
    session.flush()
    _audit(
        session,
        _action,
        "model_version",
        target.id,
        actor_id,
        {"name": target.name, "previous_active_id": current.id if current else None, "reason": reason},
    )
    return target


def _check_decider(session: Session, actor_id: int | None, reason: str | None, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValueError(f"{what} needs a reason (it is kept in the audit log)")
    if actor_id is None:
        # Without an account only a person at a command line decides (its OS user is audited), never a worker.
        if not (current_operator() or "").startswith("os:"):
            raise PermissionError(f"{what}: say who decides (an admin account, or a person at the command line)")
        return reason
    user = session.get(User, actor_id)
    if user is None or not user.active or user.role is not Role.ADMIN:
        raise PermissionError(f"{what}: only an active admin decides")
    return reason


def approve_model_version(session: Session, version_id: int, *, actor_id: int | None, reason: str) -> ModelVersion:
    """An admin's approval of a version that passed the gate: it becomes active (audited with the reason).

    ``actor_id`` None is allowed only inside :func:`db.operator.operator_scope` (a command line's OS user).

    Raises:
        ValueError: the version does not await approval, or no reason was given.
        PermissionError: the actor is not an active admin.
    """
    reason = _check_decider(session, actor_id, reason, "approving a model version")
    version = _fresh_version(session, version_id)
    if version.status is not ModelStatus.AWAITING_APPROVAL:
        raise ValueError(f"model version {version.name!r} is {version.status.value}, not awaiting approval")
    return promote_model_version(session, version_id, actor_id=actor_id, reason=reason, _action="model_version.approve")


def reject_model_version(session: Session, version_id: int, *, actor_id: int | None, reason: str) -> ModelVersion:
    """An admin's rejection of a candidate or a version awaiting approval (audited with the reason).

    Raises:
        ValueError: the version is neither, or no reason was given.
        PermissionError: the actor is not an active admin.
    """
    reason = _check_decider(session, actor_id, reason, "rejecting a model version")
    _lock_model_versions(session)
    version = _fresh_version(session, version_id)
    if version.status not in (ModelStatus.AWAITING_APPROVAL, ModelStatus.CANDIDATE):
        raise ValueError(f"model version {version.name!r} is {version.status.value}; only a candidate can be rejected")
    old = version.status
    version.status = ModelStatus.REJECTED
    session.flush()
    _audit(
        session,
        "model_version.reject",
        "model_version",
        version.id,
        actor_id,
        {"name": version.name, "from": old.value, "reason": reason},
    )
    return version


def versions_awaiting_approval(session: Session) -> list[ModelVersion]:
    """Versions that passed the gate and wait for an admin, oldest first."""
    return list(
        session.scalars(
            select(ModelVersion).where(ModelVersion.status == ModelStatus.AWAITING_APPROVAL).order_by(ModelVersion.id)
        )
    )


# -------------------------------------------------------------------------------------------------------- settings


def get_setting(session: Session, key: str, default: Any = None) -> Any:
    """The value of a run-time setting, or ``default`` when it was never set."""
    row = session.get(AppSetting, key, populate_existing=True)
    return default if row is None else row.value


def set_setting(session: Session, key: str, value: Any, *, actor_id: int | None = None) -> None:
    """Set a run-time setting (a JSON value); audited with the old and the new value."""
    if not key or len(key) > 64:
        raise ValueError(f"setting name {key!r} must be 1-64 characters")
    value = _json_document(value, f"setting {key}")
    row = session.get(AppSetting, key, populate_existing=True)
    old = None if row is None else row.value
    if row is None:
        session.add(AppSetting(key=key, value=value, updated_by_id=actor_id))
    else:
        row.value = value
        row.updated_by_id = actor_id
    session.flush()
    _audit(session, "setting.change", "setting", None, actor_id, {"key": key, "from": old, "to": value})


# -------------------------------------------------------------------------------------------------------- holdouts


@dataclass(frozen=True)
class HoldoutMember:
    """One photograph of a hold-out as registered: its stored photograph's hash, reference grade and masks."""

    image_sha256: str
    grade: int
    original_filename: str
    mask_hashes: Mapping[str, str]
    source: str | None = None


def holdout_digest(members: Sequence[HoldoutMember]) -> str:
    """sha256 over the members in order (photograph hash, grade, sorted mask hashes): what "frozen" means."""
    lines = [
        f"{m.image_sha256} {int(m.grade)} " + ",".join(f"{k}={v}" for k, v in sorted(dict(m.mask_hashes).items()))
        for m in members
    ]
    return sha256_hex("\n".join(lines).encode())


def add_holdout(
    session: Session,
    name: str,
    members: Sequence[HoldoutMember],
    *,
    purpose: HoldoutPurpose | str = HoldoutPurpose.HOLDOUT,
    description: str | None = None,
    actor_id: int | None = None,
) -> Holdout:
    """Register a frozen set of labelled photographs (their files must already be stored).

    Raises:
        ValueError: a taken name, no members, a photograph listed twice, a bad grade or hash.
    """
    purpose = HoldoutPurpose(purpose)
    if not name or len(name) > 128:
        raise ValueError(f"hold-out name {name!r} must be 1-128 characters")
    if get_holdout(session, name) is not None:
        raise ValueError(f"a hold-out called {name!r} already exists; hold-outs are frozen, register a new name")
    if not members:
        raise ValueError(f"hold-out {name!r}: no photographs")
    seen: set[str] = set()
    for m in members:
        if not is_sha256(m.image_sha256):
            raise ValueError(f"hold-out {name!r}: {m.original_filename}: {m.image_sha256!r} is not a sha256")
        if m.image_sha256 in seen:
            raise ValueError(f"hold-out {name!r}: {m.original_filename} is listed twice (same photograph)")
        seen.add(m.image_sha256)
        _check_grade(m.grade, f"{m.original_filename}: grade")
        _check_hashes(m.mask_hashes, f"{m.original_filename}: mask_hashes")
    counts: dict[str, int] = {}
    for m in members:
        counts[str(int(m.grade))] = counts.get(str(int(m.grade)), 0) + 1
    holdout = Holdout(
        name=name,
        purpose=purpose,
        description=description,
        digest=holdout_digest(members),
        n_images=len(members),
        grade_counts=dict(sorted(counts.items())),
        created_by_id=actor_id,
    )
    session.add(holdout)
    session.flush()
    for position, m in enumerate(members):
        session.add(
            HoldoutImage(
                holdout_id=holdout.id,
                position=position,
                image_sha256=m.image_sha256,
                original_filename=m.original_filename[:255],
                grade=int(m.grade),
                mask_hashes=_check_hashes(m.mask_hashes, "mask_hashes"),
                source=m.source,
            )
        )
    session.flush()
    _audit(
        session,
        "holdout.register",
        "holdout",
        holdout.id,
        actor_id,
        {
            "name": name,
            "purpose": purpose.value,
            "n_images": len(members),
            "digest": holdout.digest,
            "grade_counts": holdout.grade_counts,
        },
    )
    return holdout


def get_holdout(session: Session, name: str) -> Holdout | None:
    """The hold-out called ``name``, or None."""
    return session.scalars(select(Holdout).where(Holdout.name == name)).one_or_none()


def list_holdouts(session: Session, *, purpose: HoldoutPurpose | str | None = None) -> list[Holdout]:
    """Registered hold-outs (of one purpose), oldest first."""
    query = select(Holdout)
    if purpose is not None:
        query = query.where(Holdout.purpose == HoldoutPurpose(purpose))
    return list(session.scalars(query.order_by(Holdout.id)))


def holdout_members(session: Session, holdout: Holdout) -> list[HoldoutMember]:
    """A hold-out's photographs in registration order, checked against its digest.

    Raises:
        ValueError: the rows no longer match what was registered (changed behind the code's back).
    """
    rows = session.scalars(
        select(HoldoutImage).where(HoldoutImage.holdout_id == holdout.id).order_by(HoldoutImage.position)
    ).all()
    members = [
        HoldoutMember(r.image_sha256, r.grade, r.original_filename, dict(r.mask_hashes or {}), r.source) for r in rows
    ]
    if len(members) != holdout.n_images or holdout_digest(members) != holdout.digest:
        raise ValueError(
            f"hold-out {holdout.name!r} was changed after registration (its photographs no longer match its "
            "digest); it cannot be trusted: register a new hold-out"
        )
    return members


def holdout_image_hashes(session: Session) -> set[str]:
    """The photograph hashes of every registered hold-out and healthy replay set."""
    return set(session.scalars(select(HoldoutImage.image_sha256)))


def set_model_version_status(
    session: Session,
    version_id: int,
    status: ModelStatus | str,
    *,
    actor_id: int | None = None,
    reason: str | None = None,
) -> ModelVersion:
    """Change a version's status: reject a candidate, retire the active version (leaving none active) ...

    Setting ``active`` promotes (see :func:`promote_model_version`). Allowed changes: :data:`MODEL_STATUS_CHANGES`.

    Raises:
        ValueError: for a change that is not allowed.
        NotFoundError: for an unknown version.
    """
    try:
        status = ModelStatus(status)
    except ValueError:
        raise ValueError(
            f"unknown model status {status!r}; choose one of {', '.join(s.value for s in ModelStatus)}"
        ) from None
    if status is ModelStatus.ACTIVE:
        return promote_model_version(session, version_id, actor_id=actor_id, reason=reason)
    _lock_model_versions(session)
    version = _fresh_version(session, version_id)
    if version.status is status:
        return version
    if status not in MODEL_STATUS_CHANGES[version.status]:
        raise ValueError(f"model version {version.name!r} is {version.status.value}; it cannot become {status.value}")
    old = version.status
    version.status = status
    session.flush()
    _audit(
        session,
        f"model_version.{status.value}",
        "model_version",
        version.id,
        actor_id,
        {"name": version.name, "from": old.value, "reason": reason},
    )
    return version


def rollback_model_version(session: Session, *, actor_id: int | None = None, reason: str | None = None) -> ModelVersion:
    """Reject the active version and re-activate the one that was active before it.

    "Before it" is the retired version promoted most recently, so repeated rollbacks walk back through history.

    Returns:
        The version now active.

    Raises:
        ValueError: when no version is active or none was active before.
    """
    _lock_model_versions(session)
    current = active_model_version(session)
    if current is None:
        raise ValueError("no model version is active, so there is nothing to roll back")
    previous = session.scalars(
        select(ModelVersion)
        .where(ModelVersion.status == ModelStatus.RETIRED, ModelVersion.promoted_at.is_not(None))
        .order_by(ModelVersion.promoted_at.desc(), ModelVersion.id.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    ).first()
    if previous is None:
        raise ValueError(f"model version {current.name!r} is the first one ever active; there is none to roll back to")
    current.status = ModelStatus.REJECTED
    session.flush()
    previous.status = ModelStatus.ACTIVE
    previous.promoted_at = utcnow()
    session.flush()
    _audit(
        session,
        "model_version.rollback",
        "model_version",
        previous.id,
        actor_id,
        {"name": previous.name, "rejected_id": current.id, "rejected_name": current.name, "reason": reason},
    )
    return previous


# ------------------------------------------------------------------------------------------------------------ jobs


def enqueue_job(
    session: Session,
    kind: str,
    params: Mapping[str, Any] | None = None,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    time_limit_s: float | None = None,
    actor_id: int | None = None,
) -> Job:
    """Queue a job of ``kind`` (e.g. ``retrain``) with JSON parameters; it runs at most ``max_attempts`` times.

    ``time_limit_s``: how long one attempt may run (None: the claiming worker's default).
    """
    if not kind:
        raise ValueError("a job needs a kind")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    if time_limit_s is not None:
        _check_lease(time_limit_s)
    job = Job(
        kind=kind,
        params=_json_document(dict(params or {}), "job params"),
        status=JobStatus.QUEUED,
        progress=0.0,
        attempts=0,
        max_attempts=max_attempts,
        time_limit_s=time_limit_s,
    )
    session.add(job)
    session.flush()
    _audit(
        session,
        "job.enqueue",
        "job",
        job.id,
        actor_id,
        {"kind": kind, "max_attempts": max_attempts, "time_limit_s": time_limit_s},
    )
    return job


def get_job(session: Session, job_id: int) -> Job | None:
    """The job with id ``job_id`` (freshly read), or None."""
    return session.get(Job, job_id, populate_existing=True)


def list_jobs(
    session: Session, *, status: JobStatus | str | None = None, kind: str | None = None, limit: int = 100
) -> list[Job]:
    """Jobs, newest first, optionally of one status and kind."""
    query = select(Job)
    if status is not None:
        query = query.where(Job.status == JobStatus(status))
    if kind is not None:
        query = query.where(Job.kind == kind)
    return list(session.scalars(query.order_by(Job.id.desc()).limit(limit)))


def _check_lease(lease_s: float) -> None:
    if not (math.isfinite(lease_s) and lease_s > 0):
        raise ValueError(f"a lease must last a positive number of seconds, got {lease_s}")


def _fresh_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise NotFoundError(f"no job with id {job_id}")
    return job


class JobTimeLimitError(RuntimeError):
    """A job ran past its time limit: its lease is not renewed any more and the attempt must stop."""


def reap_expired_jobs(session: Session, *, kinds: Sequence[str] | None = None) -> list[Job]:
    """Running jobs whose lease has passed (their worker died or stopped making progress): queue them again while
    attempts remain, else mark them failed. Every worker calls this on every poll (:func:`claim_job` does), so a
    dead worker's job never shows "running" for longer than its lease and one poll interval.

    Returns:
        The jobs reaped (freshly read), each audited as ``job.reap``.
    """
    _serialise_writes(session)
    now = utcnow()
    query = select(Job.id, Job.worker_id, Job.attempts, Job.max_attempts).where(
        Job.status == JobStatus.RUNNING, Job.lease_expires_at < now
    )
    if kinds:
        query = query.where(Job.kind.in_(kinds))
    reaped: list[Job] = []
    for job_id, worker_id, attempts, max_attempts in session.execute(query.with_for_update(skip_locked=True)).all():
        retry = attempts < max_attempts
        error = (
            f"attempt {attempts}: the lease of worker {worker_id!r} expired (it died, hung or stopped making "
            "progress)" + ("; queued again" if retry else "; no attempts left")
        )
        done = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
            .values(
                status=JobStatus.QUEUED if retry else JobStatus.FAILED,
                error=error,
                lease_expires_at=None,
                updated_at=now,
            )
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        if done is not None:
            _audit(
                session,
                "job.reap",
                "job",
                job_id,
                None,
                {"worker_id": worker_id, "attempt": attempts, "outcome": "queued" if retry else "failed"},
            )
            reaped.append(_fresh_job(session, job_id))
    return reaped


def claim_job(
    session: Session,
    worker_id: str,
    *,
    kinds: Sequence[str] | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    time_limit_s: float | None = None,
) -> Job | None:
    """Reap expired jobs, then take the oldest queued job for ``worker_id``, or return None when there is none.

    The claim sets the job running, counts an attempt and gives the worker a lease of ``lease_s`` seconds, which
    :func:`heartbeat_job` renews, never past the attempt's time limit. Expired jobs of every kind are reaped first
    (:func:`reap_expired_jobs`).

    Commit right after claiming: on PostgreSQL the row stays locked (``FOR UPDATE SKIP LOCKED``, so other workers
    skip it) and on SQLite all writers wait until the transaction ends.

    Args:
        worker_id: Stable name of the worker (host and process id, say).
        kinds: Only jobs of these kinds.
        lease_s: Seconds until the job counts as abandoned unless renewed.
        time_limit_s: Time limit of an attempt for jobs queued without one (None: no limit).
    """
    if not worker_id:
        raise ValueError("a worker needs an id")
    _check_lease(lease_s)
    if time_limit_s is not None:
        _check_lease(time_limit_s)
    _serialise_writes(session)
    reap_expired_jobs(session)
    now = utcnow()
    claimable = Job.status == JobStatus.QUEUED
    if kinds:
        claimable = and_(claimable, Job.kind.in_(kinds))
    for _ in range(20):  # only loops when another worker took the candidate between our read and our write
        candidate = session.execute(
            select(Job.id, Job.time_limit_s)
            .where(claimable)
            .order_by(Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if candidate is None:
            return None
        job_id, limit = candidate
        limit = limit if limit is not None else time_limit_s
        lease = lease_s if limit is None else min(lease_s, limit)
        claimed = session.execute(
            update(Job)
            .where(Job.id == job_id, claimable)
            .values(
                status=JobStatus.RUNNING,
                attempts=Job.attempts + 1,
                worker_id=worker_id,
                lease_expires_at=now + timedelta(seconds=lease),
                started_at=now,
                time_limit_s=limit,
                progress=0.0,
                updated_at=now,
            )
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        if claimed is None:
            continue
        job = _fresh_job(session, job_id)
        details: dict[str, Any] = {"worker_id": worker_id, "attempt": job.attempts, "kind": job.kind}
        _audit(session, "job.claim", "job", job_id, None, details)
        return job
    return None


def _held_update(session: Session, job_id: int, worker_id: str, values: dict[str, Any]) -> Job:
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.worker_id == worker_id)
        .values(**values)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if done is None:
        job = session.get(Job, job_id, populate_existing=True)
        if job is None:
            raise NotFoundError(f"no job with id {job_id}")
        raise LeaseLostError(
            f"job {job_id} is no longer held by worker {worker_id!r} (it is {job.status.value}"
            + (f", held by {job.worker_id!r}" if job.status is JobStatus.RUNNING else "")
            + "); stop working on it"
        )
    return _fresh_job(session, job_id)


def heartbeat_job(
    session: Session,
    job_id: int,
    worker_id: str,
    *,
    progress: float | None = None,
    message: str | None = None,
    lease_s: float = DEFAULT_LEASE_S,
) -> Job:
    """Renew a job's lease and report progress (0-1) and a status message. Not audited (see module notes).

    The lease never reaches past the attempt's time limit. Call it when work made progress, not on a timer alone
    (:class:`feedback.worker.Worker` does so): a hung job then loses its lease and is reaped.

    Raises:
        LeaseLostError: when the job no longer belongs to ``worker_id``; the worker must abandon it.
        JobTimeLimitError: when the attempt's time limit has passed; the worker must stop and fail it.
    """
    _check_lease(lease_s)
    now = utcnow()
    lease_end = now + timedelta(seconds=lease_s)
    job = session.get(Job, job_id, populate_existing=True)
    if job is not None and job.time_limit_s is not None and job.started_at is not None:
        deadline = job.started_at + timedelta(seconds=job.time_limit_s)
        if now >= deadline:
            raise JobTimeLimitError(
                f"job {job_id} ran past its time limit of {job.time_limit_s:g} s; its lease is not renewed"
            )
        lease_end = min(lease_end, deadline)
    values: dict[str, Any] = {"lease_expires_at": lease_end, "updated_at": now}
    if progress is not None:
        if not (math.isfinite(progress) and 0.0 <= progress <= 1.0):
            raise ValueError(f"progress must be a fraction in [0, 1], got {progress}")
        values["progress"] = float(progress)
    if message is not None:
        values["message"] = message
    return _held_update(session, job_id, worker_id, values)


def complete_job(session: Session, job_id: int, worker_id: str, result: Mapping[str, Any] | None = None) -> Job:
    """Mark a job done with its JSON result.

    Raises:
        LeaseLostError: when the job no longer belongs to ``worker_id``.
    """
    now = utcnow()
    job = _held_update(
        session,
        job_id,
        worker_id,
        {
            "status": JobStatus.DONE,
            "progress": 1.0,
            "result": _json_document(dict(result or {}), "job result"),
            "lease_expires_at": None,
            "updated_at": now,
        },
    )
    _audit(session, "job.complete", "job", job_id, None, {"worker_id": worker_id, "attempt": job.attempts})
    return job


def fail_job(session: Session, job_id: int, worker_id: str, error: str, *, retry: bool = True) -> Job:
    """Record that an attempt failed: the job is queued again while attempts remain (and ``retry``), else failed.

    Raises:
        LeaseLostError: when the job no longer belongs to ``worker_id``.
    """
    now = utcnow()
    requeue = and_(Job.attempts < Job.max_attempts, bool(retry))
    job = _held_update(
        session,
        job_id,
        worker_id,
        {
            "status": case((requeue, JobStatus.QUEUED), else_=JobStatus.FAILED),
            "error": error,
            "lease_expires_at": None,
            "updated_at": now,
        },
    )
    action = "job.retry" if job.status is JobStatus.QUEUED else "job.fail"
    _audit(session, action, "job", job_id, None, {"worker_id": worker_id, "attempt": job.attempts, "error": error})
    return job


# ----------------------------------------------------------------------------------------------------------- audit


def record_event(
    session: Session,
    action: str,
    object_type: str,
    *,
    actor_id: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Audit an action that adds no row of its own (a dataset export, a label import), in the caller's transaction.

    Args:
        action: Dotted verb, e.g. ``dataset.export``.
        object_type: What it acted on, e.g. ``dataset``.
        actor_id: The user, or None for the command line.
        details: JSON-serialisable facts (never a password or a patient's identity).
    """
    if not action or len(action) > 64 or not object_type or len(object_type) > 32:
        raise ValueError(f"audit action {action!r} / object type {object_type!r}: 1-64 / 1-32 characters")
    _audit(session, action, object_type, None, actor_id, details)


def audit_entries(
    session: Session,
    *,
    object_type: str | None = None,
    object_id: int | None = None,
    action: str | None = None,
    user_id: int | None = None,
    limit: int | None = None,
) -> list[AuditEntry]:
    """Audit entries, oldest first, optionally filtered."""
    query = select(AuditEntry)
    if object_type is not None:
        query = query.where(AuditEntry.object_type == object_type)
    if object_id is not None:
        query = query.where(AuditEntry.object_id == object_id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if user_id is not None:
        query = query.where(AuditEntry.user_id == user_id)
    query = query.order_by(AuditEntry.id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


# --------------------------------------------------------------------------------------------------- review drafts


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
