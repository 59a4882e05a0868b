"""Append-only tables: refused in the ORM and, through triggers, by the database itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text

from db.models.clinical import Annotation
from db.models.model_versions import Holdout, HoldoutImage
from db.models.operations import AuditEntry


class AppendOnlyError(RuntimeError):
    """Raised when code tries to change or delete a row of an append-only table."""


def _refuse_change(mapper: Any, connection: Any, target: Any) -> None:
    raise AppendOnlyError(
        f"{type(target).__name__} rows are append-only; record a new one instead of changing or deleting #{target.id}"
    )


for _cls in (Annotation, AuditEntry, Holdout, HoldoutImage):
    event.listen(_cls, "before_update", _refuse_change)
    event.listen(_cls, "before_delete", _refuse_change)

#: Tables whose rows the database itself refuses to change or delete (triggers; migration 0002 adds them for the
#: annotations and the audit log, 0003 for the frozen hold-outs).
APPEND_ONLY_TABLES = (
    Annotation.__tablename__,
    AuditEntry.__tablename__,
    Holdout.__tablename__,
    HoldoutImage.__tablename__,
)
#: PostgreSQL trigger function shared by those tables' triggers.
APPEND_ONLY_FUNCTION = "drgnet_refuse_change"


def append_only_ddl(dialect: str, table: str) -> list[str]:
    """The statements that make ``table`` append-only on ``dialect`` (``sqlite`` or ``postgresql``).

    Both backends raise an integrity error (SQLite: ``RAISE(ABORT)``; PostgreSQL: SQLSTATE 23001 restrict_violation),
    so SQLAlchemy reports a refused change as :class:`sqlalchemy.exc.IntegrityError` everywhere. The migration holds a
    frozen copy of these statements; ``tests/security`` proves the two agree.
    """
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER trg_{table}_no_{verb.lower()} BEFORE {verb} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
            for verb in ("UPDATE", "DELETE")
        ]
    if dialect == "postgresql":
        return [
            f"CREATE TRIGGER trg_{table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {APPEND_ONLY_FUNCTION}()",
            f"CREATE TRIGGER trg_{table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {APPEND_ONLY_FUNCTION}()",
        ]
    return []


#: The PostgreSQL function the triggers call; TG_TABLE_NAME / TG_OP name what was refused.
APPEND_ONLY_FUNCTION_SQL = f"""CREATE OR REPLACE FUNCTION {APPEND_ONLY_FUNCTION}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
END
$$"""


def _install_append_only(table: Any, connection: Any, **kw: Any) -> None:
    # Databases made with create_all (tests, tools) enforce the same promise as migrated ones.
    # text(), not exec_driver_sql: psycopg would read the function's '%' as placeholders.
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(text(APPEND_ONLY_FUNCTION_SQL))
    for statement in append_only_ddl(dialect, table.name):
        connection.execute(text(statement))


for _cls in (Annotation, AuditEntry, Holdout, HoldoutImage):
    event.listen(_cls.__table__, "after_create", _install_append_only)
