"""Engines and sessions from one database URL.

The URL comes from ``DRGNET_DATABASE_URL``; without it DRG-Net uses an embedded SQLite file,
``<data dir>/drgnet.db``, where the data directory is ``DRGNET_DATA_DIR`` or ``./data``. PostgreSQL URLs use the
psycopg 3 driver (``postgresql+psycopg://user@host/db``; ``postgresql://`` and ``postgres://`` are rewritten to it).

Repository functions take a :class:`~sqlalchemy.orm.Session` and never commit; callers own the transaction::

    Session = make_sessionmaker(make_engine())
    with Session.begin() as session:
        repository.add_annotation(session, ...)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

DATABASE_URL_ENV = "DRGNET_DATABASE_URL"
DATA_DIR_ENV = "DRGNET_DATA_DIR"
DEFAULT_DATA_DIR = Path("data")
SQLITE_FILENAME = "drgnet.db"

#: How long an SQLite connection waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def data_dir() -> Path:
    """The data directory: ``DRGNET_DATA_DIR`` or ``./data`` (photographs, artifacts, the SQLite file)."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def database_url(url: str | URL | None = None, *, data_directory: str | os.PathLike[str] | None = None) -> URL:
    """Resolve the database URL: ``url`` if given, else ``DRGNET_DATABASE_URL``, else the SQLite default.

    The SQLite default is ``drgnet.db`` in ``data_directory`` (a command's ``--data-dir``), else in :func:`data_dir`.

    Raises:
        ValueError: for a URL that is not SQLite or PostgreSQL.
    """
    folder = Path(data_directory) if data_directory is not None else data_dir()
    raw = url or os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{(folder / SQLITE_FILENAME).resolve()}"
    try:
        parsed = make_url(raw)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise ValueError(f"cannot parse database URL {str(raw)!r}: {exc}") from exc
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    raise ValueError(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
        "use sqlite:///path/to/drgnet.db or postgresql+psycopg://user@host:5432/dbname"
    )


def sqlite_path(url: URL) -> Path | None:
    """The file an SQLite URL points at, or None for in-memory databases and other backends."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:"):
        return None
    return Path(url.database)


def _on_sqlite_connect(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets the review app read while the worker writes; foreign keys are off by default in SQLite.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def make_engine(
    url: str | URL | None = None, *, data_directory: str | os.PathLike[str] | None = None, **kwargs: Any
) -> Engine:
    """Create an engine for ``url`` (or the configured default; see :func:`database_url`, ``data_directory``).

    For SQLite the file's folder is created if needed, and every connection gets WAL journaling, foreign keys and a
    busy timeout. Extra keyword arguments go to :func:`sqlalchemy.create_engine`.
    """
    resolved = database_url(url, data_directory=data_directory)
    if resolved.get_backend_name() == "sqlite":
        path = sqlite_path(resolved)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        engine = create_engine(resolved, **kwargs)
        event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(resolved, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine``; objects stay readable after commit (``expire_on_commit=False``)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def scratch_postgres_schema(url: str | URL, prefix: str = "drgnet_scratch") -> Iterator[str]:
    """A throw-away schema on a PostgreSQL server, dropped with everything in it on exit.

    Yields:
        A URL whose connections use only that schema (``search_path``), for benchmarks that must not touch the
        server's real tables.
    """
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    server = make_url(str(url) if isinstance(url, str) else url).set(drivername="postgresql+psycopg")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield server.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        admin.dispose()
