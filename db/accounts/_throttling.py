"""Throttling sign-ins: delays after failures, lockouts, and lifting them (the rules of :mod:`db.accounts`)."""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy.orm import Session

from db import repository
from db.accounts._policy import WRONG_CREDENTIALS, AccountPolicy, SignInResult, _td
from db.models import LoginThrottle, ThrottleScope, utcnow
from db.repository._common import _serialise_writes
from db.repository.audit import _audit
from db.repository.throttles import find_throttle, get_or_add_throttle, locked_throttles


def _forget_old(row: LoginThrottle, window_s: float, now: datetime) -> None:
    if row.locked_at is None and row.last_failure_at is not None and now - row.last_failure_at > _td(window_s):
        row.failures = 0
        row.last_failure_at = None


def _account_key(username: str) -> str:
    return username.strip()[:255]


def sign_in(
    session: Session,
    username: str,
    password: str,
    *,
    client: str | None = None,
    policy: AccountPolicy | None = None,
    now: datetime | None = None,
) -> SignInResult:
    """Check a sign-in under the throttling rules of :mod:`db.accounts`; the caller commits whatever the outcome.

    Args:
        username: the name typed.
        password: the password typed (never stored or logged).
        client: the client's address (``None`` where there is none, e.g. a local command line).
        policy: the rules (default :meth:`AccountPolicy.from_env`).
        now: the time of the attempt (tests pass it; default now).
    """
    policy = policy or AccountPolicy.from_env()
    now = now or utcnow()
    _serialise_writes(session)  # SQLite: one sign-in decision at a time (PostgreSQL: the row locks)
    name = _account_key(username)
    rows = [(get_or_add_throttle(session, ThrottleScope.ACCOUNT, name), policy.account_window_s)]
    if client:
        rows.append((get_or_add_throttle(session, ThrottleScope.CLIENT, client[:255]), policy.client_window_s))
    details = {"client": client} if client else {}
    user = repository.get_user(session, name)
    user_id = user.id if user is not None else None

    for row, window in rows:
        _forget_old(row, window, now)
    locked = [row for row, _ in rows if row.locked_at is not None]
    if locked:
        what = "this account" if locked[0].scope == ThrottleScope.ACCOUNT else "this computer"
        _audit(session, "user.login_refused", "user", user_id, None, {**details, "username": name, "reason": "locked"})
        return SignInResult(
            None, f"Too many failed sign-ins: {what} is locked until an administrator unlocks it.", locked=True
        )
    waits = [
        (row.last_failure_at + _td(policy.delay_s(row.failures)) - now).total_seconds()
        for row, _ in rows
        if row.last_failure_at is not None
    ]
    wait = max(waits, default=0.0)
    if wait > 0:
        _audit(
            session,
            "user.login_refused",
            "user",
            user_id,
            None,
            {**details, "username": name, "reason": "throttled", "retry_after_s": round(wait, 1)},
        )
        seconds = math.ceil(wait)
        return SignInResult(
            None, f"Too many failed sign-ins: wait {seconds} s before trying again.", retry_after_s=wait
        )

    found = repository.verify_password(session, name, password, details=details)
    if found is not None:
        rows[0][0].failures = 0
        rows[0][0].last_failure_at = None
        return SignInResult(found)

    lockout = False
    for (row, _), limit in zip(rows, (policy.account_lockout, policy.client_lockout), strict=False):
        lockout |= _record_failure(session, row, limit, now, user_id)
    if lockout:
        return SignInResult(None, "Too many failed sign-ins: locked until an administrator unlocks it.", locked=True)
    return SignInResult(None, WRONG_CREDENTIALS, retry_after_s=max(policy.delay_s(r.failures) for r, _ in rows))


def _record_failure(session: Session, row: LoginThrottle, limit: int, now: datetime, user_id: int | None) -> bool:
    """Count one failure; lock (and audit the lockout) at ``limit``. True if this failure locked it."""
    row.failures += 1
    row.last_failure_at = now
    if row.failures < limit or row.locked_at is not None:
        return False
    row.locked_at = now
    if row.scope == ThrottleScope.ACCOUNT:
        _audit(session, "user.lockout", "user", user_id, None, {"username": row.key, "failures": row.failures})
    else:
        _audit(session, "client.lockout", "client", None, None, {"client": row.key, "failures": row.failures})
    return True


def locked_out(session: Session) -> list[LoginThrottle]:
    """Accounts and clients locked by too many failed sign-ins, oldest lockout first."""
    return locked_throttles(session)


def unlock(
    session: Session, *, username: str | None = None, client: str | None = None, actor_id: int | None = None
) -> bool:
    """Lift a lockout (and forget the failures) of an account name or a client; True if one was locked.

    Raises:
        ValueError: when neither or both of ``username`` and ``client`` are given.
    """
    if (username is None) == (client is None):
        raise ValueError("name either an account or a client to unlock")
    scope, key = (
        (ThrottleScope.ACCOUNT, _account_key(username)) if username is not None else (ThrottleScope.CLIENT, client)
    )
    row = find_throttle(session, scope, key)
    if row is None or (row.locked_at is None and row.failures == 0):
        return False
    was_locked = row.locked_at is not None
    row.failures, row.last_failure_at, row.locked_at = 0, None, None
    if scope == ThrottleScope.ACCOUNT:
        user = repository.get_user(session, key)
        _audit(
            session,
            "user.unlock",
            "user",
            user.id if user else None,
            actor_id,
            {"username": key, "was_locked": was_locked},
        )
    else:
        _audit(session, "client.unlock", "client", None, actor_id, {"client": key, "was_locked": was_locked})
    return was_locked
