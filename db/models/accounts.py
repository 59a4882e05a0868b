"""Users, their sign-in sessions and the sign-in throttle."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.models._base import SHA256_LENGTH, Base, _enum, utcnow
from db.models.enums import Role, ThrottleScope


class User(Base):
    """Someone who signs in to the review app."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    #: argon2id hash in PHC string format; the password itself is never stored or logged.
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Set when an admin resets the password: the next sign-in leads only to the change-password page.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    def __repr__(self) -> str:
        return f"User(id={self.id}, username={self.username!r}, role={self.role!s}, active={self.active})"


class LoginThrottle(Base):
    """Failed sign-ins of one account or one client, so every app process sees the same delays and lockouts.

    A row for a user name that does not exist is kept like any other, so the answer never reveals whether a name exists.
    """

    __tablename__ = "login_throttle"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[ThrottleScope] = mapped_column(_enum(ThrottleScope, "scope"))
    #: The user name as typed (scope ``account``) or the client's address (scope ``client``).
    key: Mapped[str] = mapped_column(String(255))
    #: Failed attempts counted so far (attempts refused during a delay are not counted: no password was checked).
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column()
    #: Set when ``failures`` reached the lockout limit; only an admin clears it (Users page, ``drgnet user unlock``).
    locked_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (UniqueConstraint("scope", "key"),)

    def __repr__(self) -> str:
        locked = self.locked_at is not None
        return f"LoginThrottle({self.scope!s}:{self.key!r}, failures={self.failures}, locked={locked})"


class UserSession(Base):
    """A signed-in browser session; the browser holds a random token, the database only its sha256."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(SHA256_LENGTH), unique=True)
    #: The client address at sign-in, for the audit trail.
    client: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Last page run; a session idle for longer than the configured time is expired.
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()
    #: Why it ended: ``logout``, ``idle``, ``expired``, ``disabled``, ``password``.
    revoked_reason: Mapped[str | None] = mapped_column(String(32))

    user: Mapped[User] = relationship()

    def __repr__(self) -> str:
        return f"UserSession(id={self.id}, user_id={self.user_id}, revoked={self.revoked_reason!r})"
