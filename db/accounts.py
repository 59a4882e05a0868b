"""Sign-in rules kept in the database, so every app process applies the same ones.

- **Throttling.** Failed sign-ins are counted per account (the name typed, existing or not) and per client (network
  address). After ``f`` failures the next attempt is refused until ``delay(f) = min(max, base * 2**(f-1))`` seconds
  have passed since the last one, without checking the password (so waiting out the delay is the only way on), and
  after :attr:`AccountPolicy.account_lockout` (account) or :attr:`AccountPolicy.client_lockout` (client) failures the
  account or client is locked until an admin unlocks it (Users page, ``drgnet user unlock``). A success resets the
  account's count; a client's count is forgotten only after an hour without failures, so signing in to one's own
  account between guesses at others does not reset the clock.
- **Sessions.** A sign-in starts a server-side session: the browser keeps a random token (in a cookie), the table
  keeps its sha256, when it was last used and whether it was revoked. A session ends at sign-out, after
  :attr:`AccountPolicy.session_idle_s` without a page run, after :attr:`AccountPolicy.session_max_age_s` in any case,
  when the account is disabled and when its password changes.
- **Passwords.** Changing one's own password needs the current one; an admin's reset sets a temporary password that
  must be changed at the next sign-in. Both end the user's other sessions.

Every decision is audited in the same transaction: ``user.login``, ``user.login_failed``, ``user.login_refused``,
``user.lockout`` / ``client.lockout``, ``user.unlock`` / ``client.unlock``, ``user.logout``,
``user.session_expired``, ``user.password_change``, ``user.password_reset``.

Like :mod:`db.repository`, whose audit, write-lock and password-hash helpers it shares, every function takes a
session and never commits.
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import repository
from db.models import LoginThrottle, ThrottleScope, User, UserSession, utcnow
from db.repository._common import _serialise_writes
from db.repository.audit import _audit
from db.repository.users import _hash_password, _password_matches

#: Environment variable -> :class:`AccountPolicy` field. Values are numbers; minutes and hours where the name says so.
POLICY_ENV = {
    "DRGNET_LOGIN_LOCKOUT_FAILURES": "account_lockout",
    "DRGNET_LOGIN_CLIENT_LOCKOUT_FAILURES": "client_lockout",
    "DRGNET_LOGIN_DELAY_S": "base_delay_s",
    "DRGNET_LOGIN_MAX_DELAY_S": "max_delay_s",
    "DRGNET_SESSION_IDLE_MINUTES": "session_idle_s",
    "DRGNET_SESSION_MAX_HOURS": "session_max_age_s",
}
_SCALE = {"session_idle_s": 60.0, "session_max_age_s": 3600.0}

#: The message a refused or failed sign-in shows: the same whether the name exists or not.
WRONG_CREDENTIALS = "Wrong user name or password, or the account is disabled."


@dataclass(frozen=True)
class AccountPolicy:
    """How sign-ins are throttled and how long sessions live (defaults; see :meth:`from_env`)."""

    account_lockout: int = 10  # failed sign-ins of one account before it is locked
    client_lockout: int = 50  # failed sign-ins from one client (any account names) before it is locked
    base_delay_s: float = 1.0  # wait after the first failure; doubles with each further one
    max_delay_s: float = 300.0  # the longest wait between two attempts
    account_window_s: float = 24 * 3600.0  # an account's failures are forgotten after this long without one
    client_window_s: float = 3600.0  # a client's failures are forgotten after this long without one
    session_idle_s: float = 30 * 60.0  # a session unused for this long is over
    session_max_age_s: float = 12 * 3600.0  # no session lives longer than this

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AccountPolicy:
        """The defaults, overridden by the variables of :data:`POLICY_ENV` that are set.

        Raises:
            ValueError: naming the variable whose value is not a positive number.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, float | int] = {}
        types = {f.name: f.type for f in fields(cls)}
        for var, name in POLICY_ENV.items():
            raw = environ.get(var)
            if raw is None or raw.strip() == "":
                continue
            try:
                number = float(raw)
            except ValueError:
                number = math.nan
            if not math.isfinite(number) or number <= 0:
                raise ValueError(f"{var}={raw!r}: expected a positive number")
            if types[name] in ("int", int):
                if number != int(number):
                    raise ValueError(f"{var}={raw!r}: expected a whole number")
                values[name] = int(number)
            else:
                values[name] = number * _SCALE.get(name, 1.0)
        return cls(**values)

    def delay_s(self, failures: int) -> float:
        """How long to wait after the ``failures``-th failure before the next attempt is looked at."""
        if failures <= 0:
            return 0.0
        return min(self.max_delay_s, self.base_delay_s * 2.0 ** min(failures - 1, 62))


@dataclass(frozen=True)
class SignInResult:
    """What :func:`sign_in` decided. ``user`` is set exactly when the sign-in succeeded."""

    user: User | None
    message: str | None = None  # why it was refused, in words for the person signing in
    retry_after_s: float | None = None  # set while a delay is running
    locked: bool = False


# ------------------------------------------------------------------------------------------------------ throttling


def _throttle_row(session: Session, scope: ThrottleScope, key: str) -> LoginThrottle:
    row = session.scalars(
        select(LoginThrottle).where(LoginThrottle.scope == scope, LoginThrottle.key == key).with_for_update()
    ).one_or_none()
    if row is None:
        # Two processes may race to create it: the loser's unique violation rolls back only this savepoint.
        try:
            with session.begin_nested():
                row = LoginThrottle(scope=scope, key=key, failures=0)
                session.add(row)
        except IntegrityError:
            row = session.scalars(
                select(LoginThrottle).where(LoginThrottle.scope == scope, LoginThrottle.key == key).with_for_update()
            ).one()
    return row


def _forget_old(row: LoginThrottle, window_s: float, now: datetime) -> None:
    if row.locked_at is None and row.last_failure_at is not None and now - row.last_failure_at > _td(window_s):
        row.failures = 0
        row.last_failure_at = None


def _td(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


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
    """Check a sign-in under the throttling rules (module docstring); the caller commits whatever the outcome.

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
    rows = [(_throttle_row(session, ThrottleScope.ACCOUNT, name), policy.account_window_s)]
    if client:
        rows.append((_throttle_row(session, ThrottleScope.CLIENT, client[:255]), policy.client_window_s))
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
    query = select(LoginThrottle).where(LoginThrottle.locked_at.is_not(None)).order_by(LoginThrottle.locked_at)
    return list(session.scalars(query))


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
    row = session.scalars(
        select(LoginThrottle).where(LoginThrottle.scope == scope, LoginThrottle.key == key).with_for_update()
    ).one_or_none()
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


# -------------------------------------------------------------------------------------------------------- sessions


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(
    session: Session, user: User, *, client: str | None = None, now: datetime | None = None
) -> tuple[UserSession, str]:
    """Start a signed-in session for ``user``: the row, and the token the browser keeps (shown nowhere else)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)  # 256 bits: unguessable, so it needs no signature; only its hash is stored
    row = UserSession(user_id=user.id, token_sha256=_token_hash(token), client=client, created_at=now, last_seen_at=now)
    session.add(row)
    session.flush()
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
        row = session.scalars(select(UserSession).where(UserSession.token_sha256 == _token_hash(token))).one_or_none()
    elif session_id is not None:
        row = session.get(UserSession, session_id)
    else:
        return None
    if row is None or row.revoked_at is not None:
        return None
    user = session.get(User, row.user_id)
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
    row = session.get(UserSession, session_id)
    if row is None or row.revoked_at is not None:
        return False
    _end(session, row, reason, now or utcnow(), row.user_id, "user.logout")
    return True


def revoke_sessions(
    session: Session, user_id: int, reason: str, *, keep: int | None = None, now: datetime | None = None
) -> int:
    """Revoke every live session of a user (but ``keep``); how many there were."""
    query = (
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow(), revoked_reason=reason)
    )
    if keep is not None:
        query = query.where(UserSession.id != keep)
    return session.execute(query).rowcount or 0


# ------------------------------------------------------------------------------------------------------- passwords


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
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise ValueError("this account is disabled")
    _serialise_writes(session)
    row = _throttle_row(session, ThrottleScope.ACCOUNT, user.username)
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
