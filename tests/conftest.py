"""Shared fixtures."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the real PostgreSQL server the database tests use.

    CI sets ``DRGNET_TEST_POSTGRES_URL``; outside CI the test is skipped when it is unset, but under
    ``CI=true`` a missing server is a failure, never a silent skip.
    """
    url = os.environ.get("DRGNET_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("DRGNET_TEST_POSTGRES_URL is not set in CI")
        pytest.skip("DRGNET_TEST_POSTGRES_URL not set")
    return url
