"""Accounts: creation with an argon2id hash, look-ups, password checks, disabling."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Role, User
from db.passwords import check_password_strength
from db.repository._common import NotFoundError, _enum_member
from db.repository.audit import _add_audited, _audit
from db.repository.sessions import revoke_user_sessions

_USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
# argon2id with the library's defaults (RFC 9106 low-memory profile: 64 MiB, 3 passes).
_hasher = PasswordHasher()
_dummy_hash: str | None = None


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
    role = _enum_member(Role, role, "role")
    if get_user(session, username) is not None:
        raise ValueError(f"user {username!r} already exists")
    user = User(username=username, role=role, password_hash=_hash_password(password, username), active=True)
    return _add_audited(session, user, "user.create", actor_id, {"username": username, "role": role.value})


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
        revoke_user_sessions(session, user.id, "disabled")
        session.flush()
        _audit(session, "user.disable", "user", user.id, actor_id, {"username": username})
    return user
