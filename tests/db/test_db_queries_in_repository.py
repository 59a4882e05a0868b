"""Every query of ``db`` lives in ``db/repository`` (issue 13: "the repository owns every query").

An AST scan of the other ``db`` modules for the calls that read or write rows: SQLAlchemy's statement builders
(``select``, ``insert``, ``update``, ``delete``, ``text``), running a statement (``.execute``, ``.scalars``,
``.scalar``, ``.exec_driver_sql``, the legacy ``.query``) and a session's row methods (``session.get``, ``.add``,
``.delete``, ...). The few exceptions are not reads or writes of rows but the schema and the connection itself, and
each is allowed only the calls it needs.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DB = ROOT / "db"

STATEMENT_BUILDERS = {"select", "insert", "update", "delete", "text"}
RUNS_A_STATEMENT = {"execute", "scalars", "scalar", "exec_driver_sql", "query"}
SESSION_ROW_METHODS = {"get", "add", "add_all", "delete", "merge"}

#: Folders whose modules may query: the repository, and Alembic's revisions (DDL and data migrations).
QUERYING_PACKAGES = ("db/repository/", "db/migrations/")
#: Modules outside them that need a statement for the schema or the connection, and only those calls.
SCHEMA_AND_CONNECTION = {
    "db/engine.py": {"execute", "text"},  # SQLite PRAGMAs on connect; CREATE/DROP SCHEMA of PostgreSQL test schemas
    "db/models/append_only.py": {"execute", "text"},  # installs the append-only triggers (DDL) with the tables
    "db/models/model_versions.py": {"text"},  # the partial unique index's WHERE clause (DDL)
}


def _queries(source: str) -> list[tuple[int, str]]:
    """(line, call) for each call in ``source`` that builds, runs or fetches through a statement or a session."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in STATEMENT_BUILDERS:
            found.append((node.lineno, func.id))
        elif isinstance(func, ast.Attribute):
            if func.attr in RUNS_A_STATEMENT:
                found.append((node.lineno, func.attr))
            elif func.attr in SESSION_ROW_METHODS and isinstance(func.value, ast.Name) and func.value.id == "session":
                found.append((node.lineno, f"session.{func.attr}"))
            elif func.attr in STATEMENT_BUILDERS and isinstance(func.value, ast.Name) and func.value.id == "sa":
                found.append((node.lineno, f"sa.{func.attr}"))
    return found


def test_no_module_of_db_outside_the_repository_queries():
    offenders = []
    for path in sorted(DB.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(QUERYING_PACKAGES):
            continue
        allowed = SCHEMA_AND_CONNECTION.get(rel, set())
        offenders += [f"{rel}:{line}: {call}" for line, call in _queries(path.read_text()) if call not in allowed]
    assert not offenders, "queries outside db/repository (move them into a repository module):\n" + "\n".join(offenders)


def test_the_scan_sees_statements_runs_and_session_row_methods():
    source = """
from sqlalchemy import select, update, text

def f(session, conn, q):
    session.scalars(select(User))
    conn.execute(update(User).values(active=False))
    session.get(User, 1)
    session.add(User())
    session.query(User).all()
    conn.exec_driver_sql("BEGIN IMMEDIATE")
    {}.get("a")  # a dict's get is not a query
"""
    calls = [call for _, call in _queries(source)]
    assert calls.count("select") == 1 and calls.count("update") == 1
    assert {"scalars", "execute", "session.get", "session.add", "query", "exec_driver_sql"} <= set(calls)
    assert "get" not in calls


def test_the_exceptions_still_exist_and_still_need_their_calls():
    # An exception that no longer needs its calls is dropped, not left to excuse a future query.
    for rel, allowed in SCHEMA_AND_CONNECTION.items():
        used = {call for _, call in _queries((ROOT / rel).read_text())}
        assert allowed <= used, f"{rel}: {sorted(allowed - used)} no longer used; narrow SCHEMA_AND_CONNECTION"
