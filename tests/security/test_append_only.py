"""The database itself refuses UPDATE and DELETE on annotations and the audit log (plain SQL, both backends).

Before migration 0002 a plain ``UPDATE annotations SET grade = 0`` rewrote every grade and ``DELETE FROM audit_log``
removed the history: "append-only" lived only in the ORM.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from db import migrate
from db import repository as repo
from db.engine import make_engine, make_sessionmaker
from db.models import APPEND_ONLY_TABLES

REFUSED = [
    "UPDATE annotations SET grade = 0",
    "UPDATE annotations SET comment = 'rewritten' WHERE id = {ann}",
    "DELETE FROM annotations",
    "DELETE FROM annotations WHERE id = {ann}",
    "UPDATE audit_log SET action = 'nothing'",
    "DELETE FROM audit_log",
]


@pytest.fixture
def migrated(db_url: str):
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _one_annotation(engine: Engine) -> int:
    with make_sessionmaker(engine).begin() as s:
        user = repo.create_user(s, "ana", "mauve-otter-quietly-42", "clinician")
        image, _ = repo.add_image(
            s, sha256="a" * 64, path="images/aa/a.png", original_filename="a.png", width=8, height=8
        )
        return repo.add_annotation(s, image.id, user.id, kind="grade-only", grade=3).id


def _state(engine: Engine) -> tuple:
    with engine.connect() as conn:
        anns = conn.execute(text("SELECT id, grade, comment FROM annotations ORDER BY id")).all()
        audit = conn.execute(text("SELECT id, action FROM audit_log ORDER BY id")).all()
    return anns, audit


@pytest.mark.parametrize("statement", REFUSED)
def test_plain_sql_cannot_change_or_delete(migrated: Engine, statement: str):
    ann = _one_annotation(migrated)
    before = _state(migrated)
    assert before[0] and before[1]
    with pytest.raises(IntegrityError, match="append-only"), migrated.begin() as conn:
        conn.execute(text(statement.format(ann=ann)))
    assert _state(migrated) == before


def test_truncate_is_refused_on_postgresql(migrated: Engine, backend: str):
    if backend != "postgresql":
        pytest.skip("SQLite has no TRUNCATE (DELETE is covered above)")
    _one_annotation(migrated)
    before = _state(migrated)
    for table in APPEND_ONLY_TABLES:
        with pytest.raises(IntegrityError, match="append-only"), migrated.begin() as conn:
            conn.execute(text(f"TRUNCATE {table} CASCADE"))
    assert _state(migrated) == before


def test_appending_still_works(migrated: Engine):
    ann = _one_annotation(migrated)
    with make_sessionmaker(migrated).begin() as s:
        again = repo.add_annotation(s, 1, 1, kind="grade-only", grade=1)
    assert again.previous_id == ann
    anns, audit = _state(migrated)
    assert [a.grade for a in anns] == [3, 1]
    assert len(audit) >= 4


def _triggers(engine: Engine) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text("SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'")).all()
        else:
            rows = conn.execute(
                text(
                    "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = current_schema() AND NOT t.tgisinternal"
                )
            ).all()
    return {(name, table) for name, table in rows}


def test_models_and_migration_install_the_same_triggers(backend: str):
    import importlib.util

    from db.models import APPEND_ONLY_FUNCTION_SQL, append_only_ddl

    path = migrate.MIGRATIONS_DIR / "versions" / "0002_append_only_and_accounts.py"
    spec = importlib.util.spec_from_file_location("migration_0002", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for table in APPEND_ONLY_TABLES:
        assert module.append_only_trigger_sql(backend, table) == append_only_ddl(backend, table)
    assert module.REFUSE_FUNCTION in APPEND_ONLY_FUNCTION_SQL


def test_a_create_all_database_refuses_too(engine: Engine):
    # Databases made from the models (tests, tools) keep the same promise as migrated ones.
    ann = _one_annotation(engine)
    assert {table for _, table in _triggers(engine)} == set(APPEND_ONLY_TABLES)
    with pytest.raises(IntegrityError, match="append-only"), engine.begin() as conn:
        conn.execute(text(f"DELETE FROM annotations WHERE id = {ann}"))


def test_downgrade_drops_the_triggers(db_url: str, migrated: Engine):
    _one_annotation(migrated)
    migrate.downgrade("0001", db_url)
    assert _triggers(migrated) == set()
    assert "login_throttle" not in inspect(migrated).get_table_names()
    with migrated.begin() as conn:  # 0001's promise was the ORM's only
        conn.execute(text("UPDATE annotations SET grade = 0"))
    migrate.upgrade(db_url)
    assert len(_triggers(migrated)) == 2 * len(APPEND_ONLY_TABLES)
