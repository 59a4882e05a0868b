"""Engine configuration: the database URL, SQLite pragmas, UTC timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db import repository
from db.engine import database_url, make_engine
from db.models import Job, Prediction


def test_default_url_is_sqlite_in_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("DRGNET_DATABASE_URL", raising=False)
    monkeypatch.setenv("DRGNET_DATA_DIR", str(tmp_path / "somewhere" / "data"))
    url = database_url()
    assert url.get_backend_name() == "sqlite"
    assert Path(url.database) == (tmp_path / "somewhere" / "data" / "drgnet.db").resolve()
    engine = make_engine()
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    engine.dispose()
    assert (tmp_path / "somewhere" / "data" / "drgnet.db").is_file()


def test_environment_url_wins_and_postgres_urls_use_psycopg(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DRGNET_DATABASE_URL", "postgres://me@db.example:5432/drgnet")
    assert database_url().drivername == "postgresql+psycopg"
    assert database_url("postgresql://me@h/x").drivername == "postgresql+psycopg"
    assert database_url("sqlite:///x.db").drivername == "sqlite"


def test_unsupported_url_is_a_clear_error():
    with pytest.raises(ValueError, match="unsupported database URL.*postgresql\\+psycopg"):
        database_url("mysql://root@localhost/drgnet")


def test_sqlite_connections_get_wal_foreign_keys_and_busy_timeout(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'a' / 'b.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    engine.dispose()


def test_foreign_keys_are_enforced(Session: sessionmaker[Session]):
    with pytest.raises(IntegrityError), Session.begin() as session:
        session.add(Prediction(image_id=12345, model_name="m", grade=0, probabilities=[1, 0, 0, 0, 0]))


def test_timestamps_come_back_timezone_aware_in_utc(engine: Engine, Session: sessionmaker[Session]):
    tz = timezone(timedelta(hours=5, minutes=30))
    local = datetime(2024, 3, 1, 12, 0, tzinfo=tz)
    with Session.begin() as session:
        job = repository.enqueue_job(session, "retrain")
        job.lease_expires_at = local
    with Session() as session:
        job = session.scalars(select(Job)).one()
        assert job.created_at.tzinfo is not None and job.created_at.utcoffset() == timedelta(0)
        assert job.lease_expires_at == local
        assert job.lease_expires_at.tzinfo == UTC
        assert job.lease_expires_at.hour == 6 and job.lease_expires_at.minute == 30


def test_naive_timestamps_are_refused(Session: sessionmaker[Session]):
    with pytest.raises(Exception, match="naive datetime"), Session.begin() as session:
        job = repository.enqueue_job(session, "retrain")
        job.lease_expires_at = datetime(2024, 1, 1)
        session.flush()
