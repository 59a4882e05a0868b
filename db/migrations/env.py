"""Alembic environment: migrates the database named by :func:`db.migrate.alembic_config` (or ``sqlalchemy.url``).

All or nothing: one transaction holds every migration of a run (Alembic's default when ``transaction_per_migration``
is off), so a run that fails half-way leaves the database exactly as it was. PostgreSQL has transactional DDL.
SQLite has it too, but two layers hide it: Alembic treats SQLite as non-transactional (it would commit after each
migration), and Python's sqlite3 module opens its implicit transaction only before INSERT/UPDATE/DELETE, so
``CREATE``/``ALTER`` statements autocommit. Both are switched off here for the migration connection: the driver's
implicit transactions are disabled and the transaction is begun explicitly (``BEGIN IMMEDIATE``, which also keeps a
second migrating process out until this one ends).

The target metadata is the models', so ``alembic revision --autogenerate`` (run against a database at head) proposes
the difference between the migrations and ``db/models.py``; review and hand-edit what it writes.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Engine, event, pool

from db.engine import make_engine
from db.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=True,
        # SQLite's DDL is transactional once the driver lets it be (see _transactional_sqlite).
        transactional_ddl=True,
        **kwargs,
    )


def _transactional_sqlite(engine: Engine) -> None:
    """Let SQLite roll back DDL: no implicit (DML-only) transactions in the driver, an explicit BEGIN instead."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def run_migrations_offline() -> None:
    """Write the SQL of the migrations instead of running it (``--sql``)."""
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    _configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on a connection: one passed in by the caller, or a new one to the configured URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    engine = make_engine(url, poolclass=pool.NullPool)
    _transactional_sqlite(engine)
    try:
        with engine.connect() as conn:
            _configure(connection=conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
