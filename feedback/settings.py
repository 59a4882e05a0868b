"""Settings an admin changes at run time, stored in the database (``app_settings``) and audited when changed.

Every default is the safe choice: no automatic promotion, only admins upload, and automatic retraining needs
corrections from at least two accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from db import repository
from db.models import Role, User


@dataclass(frozen=True)
class Setting:
    key: str
    default: Any
    kind: type
    help: str


#: A candidate that passes the gate becomes active at once, without an admin's approval.
AUTO_PROMOTE = Setting("auto_promote", False, bool, "Promote a candidate that passes the gate without approval")
#: Clinicians may upload photographs (admins always may).
CLINICIANS_MAY_UPLOAD = Setting("clinicians_may_upload", False, bool, "Clinicians may upload photographs")
#: Distinct annotators whose corrections automatic retraining needs (one account alone never triggers it).
RETRAIN_MIN_ANNOTATORS = Setting(
    "retrain_min_annotators", 2, int, "Distinct annotators needed before corrections queue retraining on their own"
)

SETTINGS = {s.key: s for s in (AUTO_PROMOTE, CLINICIANS_MAY_UPLOAD, RETRAIN_MIN_ANNOTATORS)}


def get(session: Session, setting: Setting) -> Any:
    """The setting's value (its default until an admin changes it); a stored value of the wrong type is refused."""
    value = repository.get_setting(session, setting.key, setting.default)
    if setting.kind is bool and not isinstance(value, bool):
        raise ValueError(f"setting {setting.key} holds {value!r}; expected true or false")
    if setting.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"setting {setting.key} holds {value!r}; expected a whole number")
    return value


def change(session: Session, setting: Setting, value: Any, *, actor_id: int | None) -> None:
    """Change a setting (audited). ``actor_id`` must be an active admin; None only from a command line.

    Raises:
        PermissionError: the actor is not an active admin.
        ValueError: a value of the wrong type, or a minimum of annotators below 2 (one account alone must never
            retrain the model everyone uses).
    """
    if actor_id is not None:
        user = repository.get_user_by_id(session, actor_id)
        if user is None or not user.active or user.role is not Role.ADMIN:
            raise PermissionError("only an active admin changes settings")
    if setting.kind is bool and not isinstance(value, bool):
        raise ValueError(f"{setting.key} is true or false, got {value!r}")
    if setting.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{setting.key} is a whole number, got {value!r}")
    if setting is RETRAIN_MIN_ANNOTATORS and value < 2:
        raise ValueError(f"{setting.key} must be at least 2: one account's corrections alone never retrain the model")
    repository.set_setting(session, setting.key, value, actor_id=actor_id)


def may_upload(session: Session, user: User) -> bool:
    """Whether ``user`` may upload photographs: active admins always, clinicians when the setting allows it."""
    if not user.active:
        return False
    return user.role is Role.ADMIN or bool(get(session, CLINICIANS_MAY_UPLOAD))
