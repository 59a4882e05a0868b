"""What both command groups share: one migrated database transaction, with errors as messages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from db.cli_support import fail, operated_engine

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def _where(url: str | None, data_dir: Path | None = None) -> str:
    from db.engine import database_url

    try:
        return database_url(url, data_directory=data_dir).render_as_string(hide_password=True)
    except ValueError as exc:
        fail(str(exc))


@contextmanager
def _session(url: str | None, data_dir: Path | None = None) -> Iterator[Session]:
    """One transaction on a database that is migrated to head; errors become messages a user can act on.

    Without a URL (and no ``DRGNET_DATABASE_URL``) the SQLite file of ``data_dir`` is used.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from db.engine import make_sessionmaker

    with operated_engine(url, data_dir) as engine:
        try:
            with make_sessionmaker(engine).begin() as session:
                yield session
        except (ValueError, LookupError) as exc:
            fail(str(exc.args[0]) if exc.args else str(exc))
        except SQLAlchemyError as exc:
            # The driver's message only: the statement's parameters (a password hash, say) stay out of the terminal.
            fail(f"database error on {_where(url, data_dir)}: {getattr(exc, 'orig', None) or type(exc).__name__}")
