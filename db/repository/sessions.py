"""Signed-in browser sessions: the rows behind the token a browser keeps (only its sha256 is stored).

When a session starts, lasts and ends is decided by :mod:`db.accounts`, which audits each decision in the same
transaction (``user.login``, ``user.logout``, ``user.session_expired``, ``user.password_change``, ...).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import UserSession, utcnow


def add_user_session(
    session: Session, user_id: int, token_sha256: str, *, client: str | None, now: datetime
) -> UserSession:
    """Insert a live session of ``user_id`` started (and last seen) at ``now``."""
    row = UserSession(user_id=user_id, token_sha256=token_sha256, client=client, created_at=now, last_seen_at=now)
    session.add(row)
    session.flush()
    return row


def get_user_session(session: Session, session_id: int) -> UserSession | None:
    """The session with id ``session_id`` (live or not), or None."""
    return session.get(UserSession, session_id)


def user_session_by_token_hash(session: Session, token_sha256: str) -> UserSession | None:
    """The session whose browser token hashes to ``token_sha256`` (live or not), or None."""
    return session.scalars(select(UserSession).where(UserSession.token_sha256 == token_sha256)).one_or_none()


def revoke_user_sessions(
    session: Session, user_id: int, reason: str, *, keep: int | None = None, now: datetime | None = None
) -> int:
    """End every live session of a user but ``keep``, recording ``reason``; how many there were."""
    query = (
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow(), revoked_reason=reason)
    )
    if keep is not None:
        query = query.where(UserSession.id != keep)
    return session.execute(query).rowcount or 0
