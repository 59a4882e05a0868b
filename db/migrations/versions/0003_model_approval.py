"""Model approval: versions awaiting an admin's approval, frozen hold-outs, shadow predictions, job time limits,
run-time settings.

Revision ID: 0003
Revises: 0004
Create Date: 2026-12-01

- ``model_versions.status`` may be ``awaiting-approval`` (a candidate that passed the gate); the column widens to
  24 characters.
- ``holdouts`` / ``holdout_images``: named, frozen sets of labelled photographs (the gate's hold-out, healthy
  replay images); triggers refuse UPDATE and DELETE on both, as 0002's do on the annotations (a frozen copy of
  :func:`db.models.append_only_ddl`, using 0002's PostgreSQL function).
- ``predictions.shadow``: predictions of a model that was not the active one; never what the worklist shows.
- ``jobs.time_limit_s`` and ``jobs.started_at``: an attempt's lease is never renewed past its time limit.
- ``app_settings``: settings an admin changes at run time (automatic promotion, clinician uploads ...).

SQLite cannot alter a CHECK constraint. Widening the allowed values of one changes nothing already stored, and
SQLite documents editing the table's schema text for exactly that case (https://sqlite.org/lang_altertable.html,
"making other kinds of table schema changes", the ``writable_schema`` procedure); copying the table instead would
have to drop a table that other tables' foreign keys refer to.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.migrations._ddl import ENUM, JSON, SHA256, TIMESTAMP, append_only_trigger_sql
from db.migrations._ddl import in_list as _in_list
from db.migrations._ddl import one_of as _one_of

revision: str = "0003"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FROZEN_TABLES = ("holdouts", "holdout_images")

OLD_STATUSES = ("candidate", "active", "rejected", "retired")
NEW_STATUSES = ("candidate", "awaiting-approval", "active", "rejected", "retired")


def _sqlite_edit_table_sql(table: str, replacements: Sequence[tuple[str, str]]) -> None:
    """Rewrite a table's stored CREATE statement (SQLite's documented procedure for loosening a constraint)."""
    conn = op.get_bind()
    sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).scalar()
    for old, new in replacements:
        if old not in sql:
            raise RuntimeError(f"migration 0003: {table}'s schema does not contain {old!r}; cannot edit it")
        sql = sql.replace(old, new)
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar()
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        conn.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (sql, table))
        conn.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        conn.exec_driver_sql("PRAGMA writable_schema = OFF")
    problems = conn.exec_driver_sql("PRAGMA integrity_check").scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"migration 0003: the database fails its integrity check after editing {table}: {problems}")


def _status_values(old: Sequence[str], new: Sequence[str], old_len: int, new_len: int) -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_edit_table_sql(
            "model_versions",
            [
                (f"status VARCHAR({old_len}) NOT NULL", f"status VARCHAR({new_len}) NOT NULL"),
                (_in_list("status", old), _in_list("status", new)),
            ],
        )
        return
    op.drop_constraint(op.f("ck_model_versions_status"), "model_versions", type_="check")
    op.alter_column("model_versions", "status", type_=sa.String(new_len), existing_nullable=False)
    op.create_check_constraint(op.f("ck_model_versions_status"), "model_versions", _in_list("status", new))


def upgrade() -> None:
    _status_values(OLD_STATUSES, NEW_STATUSES, 16, 24)

    op.add_column("predictions", sa.Column("shadow", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("jobs", sa.Column("time_limit_s", sa.Float(), nullable=True))
    op.add_column("jobs", sa.Column("started_at", TIMESTAMP, nullable=True))

    op.create_table(
        "holdouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("purpose", ENUM, nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("digest", SHA256, nullable=False),
        sa.Column("n_images", sa.Integer(), nullable=False),
        sa.Column("grade_counts", JSON, nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holdouts")),
        sa.UniqueConstraint("name", name=op.f("uq_holdouts_name")),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_holdouts_created_by_id_users")),
        sa.CheckConstraint("n_images > 0", name=op.f("ck_holdouts_not_empty")),
        _one_of("purpose", ("holdout", "healthy-replay"), "ck_holdouts_purpose"),
    )
    op.create_table(
        "holdout_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("holdout_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("image_sha256", SHA256, nullable=False),
        sa.Column("original_filename", sa.String(255), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=False),
        sa.Column("mask_hashes", JSON, nullable=False),
        sa.Column("source", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holdout_images")),
        sa.ForeignKeyConstraint(["holdout_id"], ["holdouts.id"], name=op.f("fk_holdout_images_holdout_id_holdouts")),
        sa.CheckConstraint("grade BETWEEN 0 AND 4", name=op.f("ck_holdout_images_grade_icdr")),
    )
    op.create_index(
        op.f("ix_holdout_images_holdout_id_image_sha256"), "holdout_images", ["holdout_id", "image_sha256"], unique=True
    )
    dialect = op.get_bind().dialect.name
    for table in FROZEN_TABLES:
        for statement in append_only_trigger_sql(dialect, table):
            op.execute(statement)
    op.create_table(
        "app_settings",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", JSON, nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_app_settings")),
        sa.ForeignKeyConstraint(["updated_by_id"], ["users.id"], name=op.f("fk_app_settings_updated_by_id_users")),
    )


def downgrade() -> None:
    bind = op.get_bind()
    waiting = bind.execute(sa.text("SELECT count(*) FROM model_versions WHERE status = 'awaiting-approval'")).scalar()
    if waiting:
        raise RuntimeError(
            f"{waiting} model version(s) await approval; approve or reject them before downgrading below 0003"
        )
    op.drop_table("app_settings")
    op.drop_index(op.f("ix_holdout_images_holdout_id_image_sha256"), table_name="holdout_images")
    op.drop_table("holdout_images")
    op.drop_table("holdouts")
    # Plain DROP COLUMN (SQLite 3.35+): copying the table instead would drop one that annotations refer to.
    op.drop_column("jobs", "started_at")
    op.drop_column("jobs", "time_limit_s")
    op.drop_column("predictions", "shadow")
    _status_values(NEW_STATUSES, OLD_STATUSES, 24, 16)
