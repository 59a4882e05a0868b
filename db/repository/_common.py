"""Shared by the repository modules: JSON documents, grade and hash checks, the SQLite write lock."""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from db.hashing import is_sha256

NUM_GRADES = 5  # ICDR 0-4; db imports nothing from drgnet (DESIGN.md §2)


class NotFoundError(LookupError):
    """A row named by id or name does not exist."""


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays arrive from inference code; db does not need to import numpy to accept them.
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json_document(value: Any, what: str) -> Any:
    """Round-trip through JSON so both backends store exactly the same document (and NaN is refused)."""
    try:
        return json.loads(json.dumps(value, default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} cannot be stored as JSON: {exc}") from exc


E = TypeVar("E", bound=Enum)


def _enum_member(enum: type[E], value: E | str, what: str) -> E:
    """``value`` as a member of ``enum``; refused with the valid choices named."""
    try:
        return enum(value)
    except ValueError:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(m.value for m in enum)}") from None


def _check_grade(grade: Any, what: str = "grade") -> int:
    try:
        value = operator.index(grade)  # ints and numpy integers; not floats, strings or bools
    except TypeError:
        value = None
    if value is None or isinstance(grade, bool) or not 0 <= value < NUM_GRADES:
        raise ValueError(f"{what} {grade!r} is not an ICDR grade (an integer 0-4)")
    return value


def _check_hashes(hashes: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    doc = _json_document(dict(hashes or {}), what)

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{where}.{key}" if where else key)
        elif not is_sha256(node):
            raise ValueError(f"{what}: {where or 'value'} = {node!r} is not an artifact sha256 (64 hex characters)")

    walk(doc, "")
    return doc


def _serialise_writes(session: Session) -> None:
    """Make the rest of this transaction see the latest data and keep other writers out until it ends.

    SQLite has one writer at a time, but the driver starts its transaction lazily at the first write, so reads
    before it may be stale; ``BEGIN IMMEDIATE`` takes the write lock up front. PostgreSQL callers lock rows instead.
    """
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        dbapi = conn.connection.dbapi_connection
        if dbapi is not None and not dbapi.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
