"""Run the Alembic migrations from Python (no ``alembic.ini`` needed).

``drgnet db upgrade`` calls :func:`upgrade`; tests and services can do the same. The migration scripts live in the
package (``db/migrations``), so the schema travels with the code.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from db.engine import database_url, make_engine, sqlite_path

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic configuration for ``url`` (default: the configured database; see :func:`db.engine.database_url`)."""
    resolved = database_url(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # configparser treats '%' as interpolation; URL-encoded passwords contain it.
    cfg.set_main_option("sqlalchemy.url", resolved.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["url"] = resolved
    return cfg


def upgrade(url: str | URL | None = None, revision: str = "head") -> None:
    """Migrate the database up to ``revision``; creates the SQLite file and its folder on first use."""
    command.upgrade(alembic_config(url), revision)


def downgrade(revision: str, url: str | URL | None = None) -> None:
    """Migrate the database down to ``revision`` (``base`` removes every table)."""
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    """The newest revision the code knows."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(url_or_engine: str | URL | Engine | None = None) -> str | None:
    """The revision the database is at, or None for a database that was never migrated."""
    if isinstance(url_or_engine, Engine):
        with url_or_engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    resolved = database_url(url_or_engine)
    path = sqlite_path(resolved)
    if path is not None and not path.exists():
        return None  # do not create an empty file just to look
    engine = make_engine(resolved)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def check_current(engine: Engine) -> None:
    """Raise unless the database behind ``engine`` is migrated to the code's head revision.

    Raises:
        RuntimeError: naming both revisions and the command that fixes it.
    """
    current, head = current_revision(engine), head_revision()
    if current != head:
        where = engine.url.render_as_string(hide_password=True)
        state = "has no DRG-Net tables yet" if current is None else f"is at revision {current}"
        raise RuntimeError(f"the database {where} {state}, but this code needs {head}: run `drgnet db upgrade`")


def open_current(url: str | URL | None = None, *, data_directory: str | os.PathLike[str] | None = None) -> Engine:
    """An engine on a reachable database migrated to head (see :func:`db.engine.make_engine` for the defaults).

    Raises:
        ValueError: a message a user can act on: a bad URL, an unreachable server, a schema to migrate.
    """
    from sqlalchemy.exc import OperationalError

    engine = make_engine(url, data_directory=data_directory)
    try:
        check_current(engine)
    except OperationalError as exc:
        engine.dispose()
        where = engine.url.render_as_string(hide_password=True)
        raise ValueError(f"cannot reach the database {where}: {exc.orig}") from None
    except RuntimeError as exc:
        engine.dispose()
        raise ValueError(str(exc)) from None
    return engine
