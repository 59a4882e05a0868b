"""Changing one's own password and an admin's reset (the rules of :mod:`db.accounts`)."""

from __future__ import annotations

import math
import secrets
from datetime import datetime

from sqlalchemy.orm import Session

from db import repository
from db.accounts._policy import AccountPolicy, _td
from db.accounts._sessions import revoke_sessions
from db.accounts._throttling import _forget_old, _record_failure, unlock
from db.models import ThrottleScope, User, utcnow
from db.repository._common import _serialise_writes
from db.repository.audit import _audit
from db.repository.throttles import get_or_add_throttle
from db.repository.users import _hash_password, _password_matches


def change_password(
    session: Session,
    user_id: int,
    current_password: str,
    new_password: str,
    *,
    keep_session: int | None = None,
    policy: AccountPolicy | None = None,
    now: datetime | None = None,
) -> User:
    """Change one's own password: the current one must be right, the new one strong and different.

    The user's other sessions end (``keep_session`` stays). A wrong current password counts as a failed sign-in of
    the account, with its delays and lockout, so a signed-in browser left open cannot be used to guess it. Commit
    even when this raises: the failed attempt is recorded in the session before the error.

    Raises:
        ValueError: a wrong current password, a new password equal to it, or a weak one (the message says which).
    """
    policy = policy or AccountPolicy.from_env()
    now = now or utcnow()
    user = repository.get_user_by_id(session, user_id)
    if user is None or not user.active:
        raise ValueError("this account is disabled")
    _serialise_writes(session)
    row = get_or_add_throttle(session, ThrottleScope.ACCOUNT, user.username)
    _forget_old(row, policy.account_window_s, now)
    if row.locked_at is not None:
        raise ValueError("too many wrong passwords: the account is locked until an administrator unlocks it")
    if row.last_failure_at is not None:
        wait = (row.last_failure_at + _td(policy.delay_s(row.failures)) - now).total_seconds()
        if wait > 0:
            raise ValueError(f"too many wrong passwords: wait {math.ceil(wait)} s before trying again")
    if not _password_matches(user, current_password):
        _record_failure(session, row, policy.account_lockout, now, user.id)
        _audit(session, "user.password_change_failed", "user", user.id, user.id, {"reason": "wrong current password"})
        raise ValueError("the current password is wrong")
    if new_password == current_password:
        raise ValueError("the new password must differ from the current one")
    user.password_hash = _hash_password(new_password, user.username)
    user.must_change_password = False
    ended = revoke_sessions(session, user.id, "password", keep=keep_session, now=now)
    _audit(session, "user.password_change", "user", user.id, user.id, {"other_sessions_ended": ended})
    return user


def reset_password(
    session: Session,
    username: str,
    *,
    new_password: str | None = None,
    actor_id: int | None = None,
    now: datetime | None = None,
) -> str:
    """An admin's reset: set a temporary password (generated unless given), to be changed at the next sign-in.

    Every session of the user ends and a lockout of the account is lifted. Returns the temporary password (to hand
    over once; it is never stored in clear).

    Raises:
        NotFoundError: no such user.
        ValueError: a given password that is weak.
    """
    user = repository.get_user(session, username)
    if user is None:
        raise repository.NotFoundError(f"no user called {username!r}")
    password = new_password or secrets.token_urlsafe(12)
    user.password_hash = _hash_password(password, user.username)
    user.must_change_password = True
    ended = revoke_sessions(session, user.id, "password-reset", now=now)
    unlock(session, username=user.username, actor_id=actor_id)
    _audit(
        session,
        "user.password_reset",
        "user",
        user.id,
        actor_id,
        {"username": user.username, "sessions_ended": ended},
    )
    return password
