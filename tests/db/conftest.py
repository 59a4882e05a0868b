"""The database tests run on SQLite (a temporary file) and on PostgreSQL (a schema of their own): the ``db_url``,
``engine``, ``Session`` and ``data_dir`` fixtures are in tests/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _cheap_hashing(cheap_password_hashing: None) -> None:
    """Every database test hashes passwords at argon2's cheapest parameters."""
