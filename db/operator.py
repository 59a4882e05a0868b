"""Who is acting, for the audit log, when no signed-in user is: the operating-system user of a command line.

The web app records its signed-in user as ``user_id`` of each audit entry. The command line and the worker have no
such user, so until now their entries said only "system". :func:`operator_scope` names the operator for everything
audited inside it (a context variable, so threads and concurrent requests do not mix), and
:func:`db.repository.audit._audit` writes the name into the entry's ``details["operator"]``.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_OPERATOR: ContextVar[str | None] = ContextVar("drgnet_operator", default=None)


def os_user() -> str:
    """The operating-system account running this process (``$USER``-independent where the OS knows better)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers) and no LOGNAME / USER
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def cli_operator(command: str = "") -> str:
    """``os:<user>@<host>`` plus the command, e.g. ``os:alice@ws1 (drgnet model approve)``."""
    name = f"os:{os_user()}@{socket.gethostname()}"
    return f"{name} ({command})" if command else name


def current_operator() -> str | None:
    """The operator named by the innermost :func:`operator_scope`, or None."""
    return _OPERATOR.get()


@contextmanager
def operator_scope(name: str | None) -> Iterator[None]:
    """Record ``name`` as the operator of every audit entry written inside the block."""
    token = _OPERATOR.set(name)
    try:
        yield
    finally:
        _OPERATOR.reset(token)
