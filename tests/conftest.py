"""Shared fixtures: the tiny model, the PostgreSQL server, and one empty database per test on SQLite and PostgreSQL.

On PostgreSQL each test gets its own schema, named in the URL's ``search_path`` so that every connection made from
that URL (engines, Alembic, subprocesses, the command line) lands in it; the schema is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, create_engine, orm, text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:  # the db tests run without importing torch
    from drgnet.config import ModelConfig


@pytest.fixture(scope="session")
def tiny_config() -> ModelConfig:
    """The model of the ``tiny`` training preset: random encoder, 64 px, narrow decoder; builds in a blink."""
    from drgnet.training.presets import PRESETS

    return PRESETS["tiny"].model


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_config: ModelConfig) -> Path:
    """A random tiny DRGNet whose soft-exudate channel fires everywhere, so lesion columns and masks have
    something to show (the other channels keep the model's near-zero prior)."""
    import torch

    from drgnet.model import DRGNet
    from drgnet.model.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = DRGNet(tiny_config).eval()
    with torch.no_grad():
        model.lesion_head[0].bias.copy_(torch.tensor([-6.0, -6.0, -6.0, 8.0]))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", model, tiny_config)


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


def _schema_url(base_url: str, schema: str) -> str:
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    # No waiting for the WAL flush at each commit: durability across a server crash does not matter in tests.
    query = {"options": f"-csearch_path={schema} -csynchronous_commit=off", "application_name": schema}
    return url.update_query_dict(query).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_admin(postgres_url: str) -> Iterator[Engine]:
    """Autocommit engine on the test server, for creating and dropping the per-test schemas."""
    admin = create_engine(make_url(postgres_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    yield admin
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database of its own: an SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'drgnet.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    admin: Engine = request.getfixturevalue("postgres_admin")
    schema = f"drgnet_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _schema_url(base, schema)
    finally:
        with admin.connect() as conn:
            # Connections a test left open (a killed subprocess's, say) would block the drop.
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND application_name = :schema"
                ),
                {"schema": schema},
            )
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of an SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'db' / 'drgnet.db'}"


@pytest.fixture
def backend(db_url: str) -> str:
    """``sqlite`` or ``postgresql``."""
    return make_url(db_url).get_backend_name()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database with the models' tables."""
    from db.engine import make_engine
    from db.models import Base

    eng = make_engine(db_url)
    Base.metadata.create_all(eng, checkfirst=False)
    yield eng
    eng.dispose()


@pytest.fixture
def Session(engine: Engine) -> orm.sessionmaker[orm.Session]:  # noqa: N802 - named like the factory it is
    """Session factory on :func:`engine`."""
    from db.engine import make_sessionmaker

    return make_sessionmaker(engine)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty data directory."""
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at its cheapest parameters: the real ones cost ~0.4 s per hash on two cores.

    Only this process is affected; subprocesses (the ``drgnet`` command line) hash with the real parameters.
    """
    from argon2 import PasswordHasher, profiles

    from db.repository import users

    monkeypatch.setattr(users, "_hasher", PasswordHasher.from_parameters(profiles.CHEAPEST))
    monkeypatch.setattr(users, "_dummy_hash", None)
