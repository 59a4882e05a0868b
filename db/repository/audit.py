"""The audit log: every repository write appends an entry in the same transaction as the write; reading it back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import AuditEntry
from db.operator import current_operator
from db.repository._common import _json_document

R = TypeVar("R")


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


def _add_audited(
    session: Session, row: R, action: str, actor_id: int | None, details: Mapping[str, Any] | None = None
) -> R:
    """Insert ``row`` and audit its creation (``action`` on the row's table, by ``actor_id``) in one go."""
    session.add(row)
    session.flush()
    _audit(session, action, action.partition(".")[0], row.id, actor_id, details)
    return row


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
