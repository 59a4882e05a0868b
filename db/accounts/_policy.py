"""The sign-in rules in numbers (:class:`AccountPolicy`, from the environment) and what a sign-in decided."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import timedelta

from db.models import User

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


def _td(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)
