"""Migration 0003 (model approval): the new status value is allowed, anything else still refused, and existing
rows (a version that predictions refer to) survive the upgrade and the way back down, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DataError, IntegrityError

from db import migrate
from db.engine import make_engine

ROW = (
    "INSERT INTO model_versions (id, name, checkpoint_path, checkpoint_sha256, config, metrics, status, created_at) "
    "VALUES (:id, :name, 'ckpt', :sha, '{}', '{}', :status, '2026-01-01 00:00:00')"
)


def test_upgrade_from_0001_keeps_rows_and_allows_awaiting_approval(db_url: str) -> None:
    migrate.upgrade(db_url, "0001")
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(ROW), {"id": 1, "name": "v1", "sha": "0" * 64, "status": "active"})
            conn.execute(
                text(
                    "INSERT INTO images (id, sha256, path, original_filename, width, height, eye, created_at) "
                    "VALUES (1, :sha, 'p', 'a.png', 4, 4, 'left', '2026-01-01 00:00:00')"
                ),
                {"sha": "1" * 64},
            )
            conn.execute(
                text(
                    "INSERT INTO predictions (id, image_id, model_version_id, grade, probabilities, lesion_summary, "
                    "lesion_map_hashes, created_at) VALUES (1, 1, 1, 2, '[0,0,1,0,0]', '{}', '{}', "
                    "'2026-01-01 00:00:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO users (id, username, role, password_hash, active, created_at) "
                    "VALUES (1, 'doc', 'clinician', 'x', true, '2026-01-01 00:00:00')"
                )
            )
            conn.execute(  # an annotation refers to the prediction: the way down must not drop that table
                text(
                    "INSERT INTO annotations (id, image_id, annotator_id, grade, mask_hashes, kind, "
                    "based_on_prediction_id, created_at) VALUES (1, 1, 1, 2, '{}', 'grade-only', 1, "
                    "'2026-01-01 00:00:00')"
                )
            )
        migrate.upgrade(db_url)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT status FROM model_versions WHERE id = 1")).scalar() == "active"
            assert conn.execute(text("SELECT shadow FROM predictions WHERE id = 1")).scalar() in (False, 0)
            conn.execute(text(ROW), {"id": 2, "name": "v2", "sha": "2" * 64, "status": "awaiting-approval"})
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(ROW), {"id": 3, "name": "v3", "sha": "3" * 64, "status": "approved-by-nobody"})
        # Back down: refused while a version awaits approval, then clean once it is decided.
        with pytest.raises(RuntimeError, match="await approval"):
            migrate.downgrade("0001", db_url)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM model_versions WHERE id = 2"))
        migrate.downgrade("0001", db_url)
        assert "holdouts" not in inspect(engine).get_table_names()
        with pytest.raises((IntegrityError, DataError)), engine.begin() as conn:
            conn.execute(text(ROW), {"id": 4, "name": "v4", "sha": "4" * 64, "status": "awaiting-approval"})
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM predictions WHERE model_version_id = 1")).scalar() == 1
            assert conn.execute(text("SELECT based_on_prediction_id FROM annotations")).scalar() == 1
    finally:
        engine.dispose()


def test_the_migration_freezes_holdouts_with_the_models_triggers(backend: str) -> None:
    import importlib.util

    from db.models import append_only_ddl

    path = migrate.MIGRATIONS_DIR / "versions" / "0003_model_approval.py"
    spec = importlib.util.spec_from_file_location("migration_0003", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for table in module.FROZEN_TABLES:
        assert module.append_only_trigger_sql(backend, table) == append_only_ddl(backend, table)
