"""Migrations: upgrading an empty database yields exactly the models' schema; downgrading removes it."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect, text
from sqlalchemy.exc import IntegrityError

from db import migrate
from db.engine import make_engine
from db.models import Base, ModelVersion, utcnow


def _differences(engine: Engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


@pytest.fixture
def migrated(db_url: str):
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def test_upgrade_yields_exactly_the_models_schema(migrated: Engine):
    assert _differences(migrated) == []
    tables = set(inspect(migrated).get_table_names())
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert migrate.current_revision(migrated) == migrate.head_revision() == "0003"


def test_the_comparison_would_notice_a_difference(migrated: Engine):
    # Guards the test above against comparing nothing: a missing index must show up.
    with migrated.begin() as conn:
        conn.execute(text("DROP INDEX ix_predictions_image_id"))
    diff = _differences(migrated)
    assert any(d[0] == "add_index" and d[1].name == "ix_predictions_image_id" for d in diff), diff


def test_upgrade_twice_is_harmless(db_url: str, migrated: Engine):
    migrate.upgrade(db_url)
    assert migrate.current_revision(migrated) == "0003"


def test_migrated_schema_allows_one_active_model_version(migrated: Engine):
    row = {
        "checkpoint_path": "ckpt",
        "checkpoint_sha256": "0" * 64,
        "config": {},
        "metrics": {},
        "status": "active",
        "created_at": utcnow(),
    }
    with migrated.begin() as conn:
        conn.execute(insert(ModelVersion), [{**row, "name": "a"}, {**row, "name": "b", "status": "retired"}])
    with pytest.raises(IntegrityError), migrated.begin() as conn:
        conn.execute(insert(ModelVersion), [{**row, "name": "c"}])


def test_downgrade_to_base_removes_everything(db_url: str, migrated: Engine, backend: str):
    migrate.downgrade("base", db_url)
    insp = inspect(migrated)
    assert set(insp.get_table_names()) <= {"alembic_version"}
    assert migrate.current_revision(migrated) is None
    with migrated.connect() as conn:
        if backend == "postgresql":
            leftovers = (
                conn.execute(
                    text(
                        "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = current_schema() AND relname <> 'alembic_version' "
                        "AND relname NOT LIKE 'alembic_version%'"
                    )
                )
                .scalars()
                .all()
            )
            # Functions are not in pg_class: the append-only triggers' function must go too.
            leftovers += (
                conn.execute(
                    text(
                        "SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                        "WHERE n.nspname = current_schema()"
                    )
                )
                .scalars()
                .all()
            )
        else:
            leftovers = (
                conn.execute(
                    text("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name NOT LIKE 'alembic%'")
                )
                .scalars()
                .all()
            )
    assert leftovers == []
    # And back up again: the round trip is clean.
    migrate.upgrade(db_url)
    assert _differences(migrated) == []
