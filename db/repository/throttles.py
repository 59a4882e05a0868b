"""Failed sign-in counters, one row per account name or client address.

The rules that read and change them (delays, lockouts, unlocking) are :mod:`db.accounts`', which audits each decision
in the same transaction. Every row is read ``FOR UPDATE``: concurrent sign-ins of one name queue behind each other
on PostgreSQL (SQLite callers take the write lock first, :func:`db.repository._common._serialise_writes`).
"""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import LoginThrottle, ThrottleScope


def _locked(scope: ThrottleScope, key: str) -> Select[tuple[LoginThrottle]]:
    return select(LoginThrottle).where(LoginThrottle.scope == scope, LoginThrottle.key == key).with_for_update()


def find_throttle(session: Session, scope: ThrottleScope, key: str) -> LoginThrottle | None:
    """The counter of ``key`` (a user name or client address) in ``scope``, locked for this transaction, or None."""
    return session.scalars(_locked(scope, key)).one_or_none()


def get_or_add_throttle(session: Session, scope: ThrottleScope, key: str) -> LoginThrottle:
    """:func:`find_throttle`, creating a counter at zero failures when there is none."""
    row = find_throttle(session, scope, key)
    if row is None:
        # Two processes may race to create it: the loser's unique violation rolls back only this savepoint.
        try:
            with session.begin_nested():
                row = LoginThrottle(scope=scope, key=key, failures=0)
                session.add(row)
        except IntegrityError:
            row = session.scalars(_locked(scope, key)).one()  # the winner's row, committed
    return row


def locked_throttles(session: Session) -> list[LoginThrottle]:
    """Accounts and clients locked by too many failed sign-ins, oldest lockout first."""
    query = select(LoginThrottle).where(LoginThrottle.locked_at.is_not(None)).order_by(LoginThrottle.locked_at)
    return list(session.scalars(query))
