"""Fixtures: one tiny seeded data dir per session, copied for each test that writes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _support_webapp_seed import PASSWORDS, build_template, copy_data


@pytest.fixture(autouse=True)
def _keep_main_module():
    """Streamlit's AppTest leaves ``sys.modules["__main__"]`` pointing at its temporary script; processes started
    later with ``spawn`` (the database concurrency tests) would then run that script instead of starting."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("webapp-template"))


@pytest.fixture
def app_env(seeded_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private seeded data dir, configured through the environment the app reads."""
    data = copy_data(seeded_template, tmp_path / "data")
    monkeypatch.setenv("DRGNET_DATA_DIR", str(data))
    monkeypatch.delenv("DRGNET_DATABASE_URL", raising=False)
    return data


@pytest.fixture
def passwords() -> dict[str, str]:
    return dict(PASSWORDS)
