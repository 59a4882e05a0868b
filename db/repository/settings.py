"""Run-time settings an admin changes in the app (JSON values, audited)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from db.models import AppSetting
from db.repository._common import _json_document
from db.repository.audit import _audit


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
