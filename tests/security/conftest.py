"""Security tests: the database fixtures (``db_url``, ``engine``, ``Session``) are in tests/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _cheap_hashing(cheap_password_hashing: None) -> None:
    """argon2id at its cheapest parameters in this process (the rules under test do not depend on them)."""
