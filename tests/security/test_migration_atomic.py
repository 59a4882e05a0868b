"""A migration that fails half-way leaves the database exactly as it was, on SQLite and PostgreSQL.

The failing migration is injected into a copy of the script directory: it creates a table, adds a column, writes a
row into an existing table and then raises. Before the fix SQLite kept the new table and column (pysqlite runs DDL
outside any transaction, and Alembic commits SQLite migrations one by one).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text

from db import migrate
from db.engine import make_engine

FAILING = """
import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))
    op.add_column("jobs", sa.Column("half_done_note", sa.String(20), nullable=True))
    op.execute("INSERT INTO jobs (kind, params, status, progress, attempts, max_attempts, created_at, updated_at) "
               "VALUES ('half', '{{}}', 'queued', 0, 0, 1, '2026-01-01', '2026-01-01')")
    raise RuntimeError("injected failure half-way through a migration")


def downgrade():
    pass
"""


def _scripts_with_failing_migration(tmp_path: Path) -> Path:
    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9999_fails.py").write_text(FAILING.format(head=migrate.head_revision()))
    return scripts


def _snapshot(engine: Engine) -> dict:
    """Everything a half-applied migration could leave behind: tables, columns, indexes, rows, revision."""
    insp = inspect(engine)
    tables = sorted(insp.get_table_names())
    shape = {
        t: ([c["name"] for c in insp.get_columns(t)], sorted(i["name"] for i in insp.get_indexes(t))) for t in tables
    }
    with engine.connect() as conn:
        counts = {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}
        if engine.dialect.name == "sqlite":
            schema_sql = conn.execute(text("SELECT type, name, sql FROM sqlite_master ORDER BY name")).all()
        else:
            schema_sql = conn.execute(
                text(
                    "SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                    "AND NOT t.tgisinternal ORDER BY tgname"
                )
            ).all()
    return {"shape": shape, "counts": counts, "sql": schema_sql}


def _failing_upgrade(db_url: str, scripts: Path) -> None:
    cfg = migrate.alembic_config(db_url)
    cfg.set_main_option("script_location", str(scripts))
    with pytest.raises(RuntimeError, match="injected failure"):
        command.upgrade(cfg, "head")


def test_failed_migration_from_head_changes_nothing(db_url: str, tmp_path: Path):
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (username, role, password_hash, active, created_at, must_change_password) "
                    "VALUES ('ana', 'clinician', 'x', true, '2026-01-01', false)"
                )
            )
        before = _snapshot(engine)
        _failing_upgrade(db_url, _scripts_with_failing_migration(tmp_path))
        after = _snapshot(engine)
        assert after == before
        assert "half_done" not in after["shape"]
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


def test_failed_upgrade_of_an_empty_database_leaves_it_empty(db_url: str, tmp_path: Path):
    # One transaction for the whole run: the good migrations before the failing one are rolled back too.
    _failing_upgrade(db_url, _scripts_with_failing_migration(tmp_path))
    engine = make_engine(db_url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert migrate.current_revision(engine) is None
        snap = _snapshot(engine)
        assert all(n == 0 for n in snap["counts"].values())
        migrate.upgrade(db_url)  # and a good upgrade still works afterwards
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()
