"""Signed-in sessions: starting one, resuming it on each page run, and ending it (the rules of :mod:`db.accounts`)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy.orm import Session

from db import repository
from db.accounts._policy import AccountPolicy, _td
from db.models import User, UserSession, utcnow
from db.repository.audit import _audit


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(
    session: Session, user: User, *, client: str | None = None, now: datetime | None = None
) -> tuple[UserSession, str]:
    """Start a signed-in session for ``user``: the row, and the token the browser keeps (shown nowhere else)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)  # 256 bits: unguessable, so it needs no signature; only its hash is stored
    row = repository.add_user_session(session, user.id, _token_hash(token), client=client, now=now)
    return row, token


def _end(session: Session, row: UserSession, reason: str, now: datetime, actor_id: int | None, action: str) -> None:
    row.revoked_at = now
    row.revoked_reason = reason
    _audit(session, action, "user", row.user_id, actor_id, {"session": row.id, "reason": reason})


def resume_session(
    session: Session,
    *,
    token: str | None = None,
    session_id: int | None = None,
    policy: AccountPolicy | None = None,
    now: datetime | None = None,
    touch: bool = True,
) -> UserSession | None:
    """The live session named by its token (a refreshed browser) or id (a running one), or None.

    A session past its idle or maximum age, or whose account was disabled, is ended here (audited as
    ``user.session_expired``). ``touch`` records this page run as activity.
    """
    policy = policy or AccountPolicy.from_env()
    now = now or utcnow()
    if token:
        row = repository.user_session_by_token_hash(session, _token_hash(token))
    elif session_id is not None:
        row = repository.get_user_session(session, session_id)
    else:
        return None
    if row is None or row.revoked_at is not None:
        return None
    user = repository.get_user_by_id(session, row.user_id)
    reason = None
    if user is None or not user.active:
        reason = "disabled"
    elif now - row.last_seen_at > _td(policy.session_idle_s):
        reason = "idle"
    elif now - row.created_at > _td(policy.session_max_age_s):
        reason = "expired"
    if reason is not None:
        _end(session, row, reason, now, None, "user.session_expired")
        return None
    # Writing on every click would queue page runs behind SQLite's write lock; a fraction of the idle time is enough.
    if touch and now - row.last_seen_at > _td(min(60.0, policy.session_idle_s / 10)):
        row.last_seen_at = now
    return row


def session_expires_in(row: UserSession, policy: AccountPolicy | None = None, now: datetime | None = None) -> float:
    """Seconds until ``row`` expires if nothing happens (idle time or maximum age, whichever comes first)."""
    policy = policy or AccountPolicy.from_env()
    now = now or utcnow()
    idle_end = row.last_seen_at + _td(policy.session_idle_s)
    age_end = row.created_at + _td(policy.session_max_age_s)
    return (min(idle_end, age_end) - now).total_seconds()


def end_session(session: Session, session_id: int, *, reason: str = "logout", now: datetime | None = None) -> bool:
    """Revoke a session (sign-out); True if it was live. Audited as ``user.logout``."""
    row = repository.get_user_session(session, session_id)
    if row is None or row.revoked_at is not None:
        return False
    _end(session, row, reason, now or utcnow(), row.user_id, "user.logout")
    return True


def revoke_sessions(
    session: Session, user_id: int, reason: str, *, keep: int | None = None, now: datetime | None = None
) -> int:
    """Revoke every live session of a user (but ``keep``); how many there were."""
    return repository.revoke_user_sessions(session, user_id, reason, keep=keep, now=now)
