"""Column types, CHECK constraints and append-only triggers that more than one migration writes.

Frozen like the migrations themselves: a released migration's DDL must never change, so nothing here is edited once
a migration uses it; a different type or trigger gets a new name. The trigger statements are a frozen copy of
:func:`db.models.append_only_ddl` (``tests/security/test_append_only.py`` proves the two install the same triggers).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)
SHA256 = sa.String(64)
ENUM = sa.String(16)

#: The PostgreSQL trigger function that refuses a change (created by 0002).
REFUSE_FUNCTION = "drgnet_refuse_change"


def in_list(column: str, values: Sequence[str]) -> str:
    """The SQL condition ``column IN ('a', 'b')``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def one_of(column: str, values: Sequence[str], name: str) -> sa.CheckConstraint:
    """A named CHECK constraint that ``column`` holds one of ``values``."""
    return sa.CheckConstraint(in_list(column, values), name=op.f(name))


def append_only_trigger_sql(dialect: str, table: str) -> list[str]:
    """The statements that make ``table`` refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL)."""
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER trg_{table}_no_{verb.lower()} BEFORE {verb} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
            for verb in ("UPDATE", "DELETE")
        ]
    return [
        f"CREATE TRIGGER trg_{table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {REFUSE_FUNCTION}()",
        f"CREATE TRIGGER trg_{table}_no_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {REFUSE_FUNCTION}()",
    ]
