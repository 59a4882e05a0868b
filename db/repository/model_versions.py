"""Model versions: registration, promotion, approval, rejection and rollback; one active at a time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.hashing import is_sha256
from db.models import ModelStatus, ModelVersion, Role, User, utcnow
from db.operator import current_operator
from db.repository._common import NotFoundError, _enum_member, _json_document, _serialise_writes
from db.repository.audit import _add_audited, _audit

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
    details = {"name": name, "parent_id": parent_id, "checkpoint_sha256": checkpoint_sha256}
    return _add_audited(session, version, "model_version.add", actor_id, details)


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


def model_version_by_checkpoint(session: Session, checkpoint_sha256: str) -> ModelVersion | None:
    """The first registered version whose weights have this sha256, or None."""
    return session.scalars(
        select(ModelVersion).where(ModelVersion.checkpoint_sha256 == checkpoint_sha256).order_by(ModelVersion.id)
    ).first()


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
    status = _enum_member(ModelStatus, status, "model status")
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
