"""``drgnet app`` no longer migrates at every start: an unmigrated or outdated database is refused unless asked."""

from __future__ import annotations

import os

import pytest
import typer
from typer.testing import CliRunner

from db import migrate

runner = CliRunner()


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The Streamlit command lines the app would have run (nothing is started)."""
    from webapp import cli

    calls: list[list[str]] = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd, env=None: calls.append(cmd) or 0)
    return calls


def _invoke(*args: str):
    from webapp.cli import app

    cli = typer.Typer()
    cli.command()(app)
    return runner.invoke(cli, list(args))


def test_unmigrated_database_is_refused(db_url, started, monkeypatch):
    monkeypatch.setenv("DRGNET_DATABASE_URL", db_url)
    result = _invoke()
    assert result.exit_code == 2 and "drgnet db upgrade" in result.output and "--migrate" in result.output
    assert started == [] and migrate.current_revision(db_url) is None


def test_outdated_database_is_refused_then_migrated_on_request(db_url, started, monkeypatch):
    monkeypatch.setenv("DRGNET_DATABASE_URL", db_url)
    migrate.upgrade(db_url, "0001")
    result = _invoke()
    assert result.exit_code == 2 and "is at revision 0001" in result.output and started == []
    assert migrate.current_revision(db_url) == "0001"
    result = _invoke("--migrate")
    assert result.exit_code == 0, result.output
    assert migrate.current_revision(db_url) == migrate.head_revision() and len(started) == 1


def test_current_database_starts(db_url, started, monkeypatch):
    monkeypatch.setenv("DRGNET_DATABASE_URL", db_url)
    monkeypatch.setenv("DRGNET_SESSION_IDLE_MINUTES", "30")  # restored afterwards: the command sets it
    migrate.upgrade(db_url)
    result = _invoke("--session-idle-minutes", "5")
    assert result.exit_code == 0, result.output
    assert len(started) == 1 and started[0][:3] == [started[0][0], "-m", "streamlit"]
    assert os.environ["DRGNET_SESSION_IDLE_MINUTES"] == "5.0"  # what the app process reads


def test_bad_session_setting_is_refused(db_url, started, monkeypatch):
    monkeypatch.setenv("DRGNET_DATABASE_URL", db_url)
    monkeypatch.setenv("DRGNET_SESSION_IDLE_MINUTES", "soon")
    migrate.upgrade(db_url)
    result = _invoke()
    assert result.exit_code == 2 and "DRGNET_SESSION_IDLE_MINUTES='soon'" in result.output and started == []


def test_seed_demo_migrates_before_the_check(db_url, started, monkeypatch, tmp_path):
    # `make demo` runs `drgnet app --data-dir data --seed-demo` on a fresh data dir: the seeding migrates, so it starts.
    import feedback.demo_seed

    seeded = []
    monkeypatch.setenv("DRGNET_DATABASE_URL", db_url)
    monkeypatch.setenv("DRGNET_DATA_DIR", str(tmp_path))  # restored afterwards: --data-dir sets it
    monkeypatch.setattr(
        feedback.demo_seed, "seed_demo", lambda data_dir, n_images, log: seeded.append(data_dir) or migrate.upgrade()
    )
    result = _invoke("--seed-demo", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert seeded == [tmp_path.resolve()] and len(started) == 1
    assert migrate.current_revision(db_url) == migrate.head_revision()
