"""Initial schema: users, images, model versions, predictions, annotations, jobs, audit log.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out by hand (not generated at run time) so that the schema a database gets never depends on the models of
the code that happens to run the migration. ``tests/db/test_db_schema.py`` proves it equals ``db/models.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.migrations._ddl import ENUM, JSON, SHA256, TIMESTAMP
from db.migrations._ddl import one_of as _one_of

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("role", ENUM, nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
        _one_of("role", ("clinician", "admin"), "ck_users_role"),
    )

    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", SHA256, nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("original_filename", sa.String(255), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("eye", ENUM, nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("source", sa.String(128), nullable=True),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("sha256", name=op.f("uq_images_sha256")),
        sa.ForeignKeyConstraint(["uploaded_by_id"], ["users.id"], name=op.f("fk_images_uploaded_by_id_users")),
        sa.CheckConstraint("width > 0 AND height > 0", name=op.f("ck_images_size_positive")),
        _one_of("eye", ("left", "right", "unknown"), "ck_images_eye"),
    )
    op.create_index(op.f("ix_images_patient_id"), "images", ["patient_id"])

    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("checkpoint_path", sa.String(1024), nullable=False),
        sa.Column("checkpoint_sha256", SHA256, nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("status", ENUM, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("promoted_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("name", name=op.f("uq_model_versions_name")),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["model_versions.id"], name=op.f("fk_model_versions_parent_id_model_versions")
        ),
        _one_of("status", ("candidate", "active", "rejected", "retired"), "ck_model_versions_status"),
    )
    # At most one active version, enforced by the database on both backends.
    op.create_index(
        "uq_model_versions_one_active",
        "model_versions",
        ["status"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )

    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("model_name", sa.String(128), nullable=True),
        sa.Column("grade", sa.Integer(), nullable=False),
        sa.Column("probabilities", JSON, nullable=False),
        sa.Column("lesion_summary", JSON, nullable=False),
        sa.Column("lesion_map_hashes", JSON, nullable=False),
        sa.Column("attention_map_hash", SHA256, nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name=op.f("fk_predictions_image_id_images")),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_predictions_model_version_id_model_versions"),
        ),
        sa.CheckConstraint("grade BETWEEN 0 AND 4", name=op.f("ck_predictions_grade_icdr")),
        sa.CheckConstraint(
            "model_version_id IS NOT NULL OR model_name IS NOT NULL", name=op.f("ck_predictions_model_known")
        ),
    )
    op.create_index(op.f("ix_predictions_image_id"), "predictions", ["image_id"])

    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=True),
        sa.Column("mask_hashes", JSON, nullable=False),
        sa.Column("kind", ENUM, nullable=False),
        sa.Column("based_on_prediction_id", sa.Integer(), nullable=True),
        sa.Column("previous_id", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
        sa.UniqueConstraint("previous_id", name=op.f("uq_annotations_previous_id")),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name=op.f("fk_annotations_image_id_images")),
        sa.ForeignKeyConstraint(["annotator_id"], ["users.id"], name=op.f("fk_annotations_annotator_id_users")),
        sa.ForeignKeyConstraint(
            ["based_on_prediction_id"],
            ["predictions.id"],
            name=op.f("fk_annotations_based_on_prediction_id_predictions"),
        ),
        sa.ForeignKeyConstraint(
            ["previous_id"], ["annotations.id"], name=op.f("fk_annotations_previous_id_annotations")
        ),
        sa.CheckConstraint("grade IS NULL OR grade BETWEEN 0 AND 4", name=op.f("ck_annotations_grade_icdr")),
        sa.CheckConstraint(
            "kind <> 'ungradable' OR grade IS NULL", name=op.f("ck_annotations_ungradable_has_no_grade")
        ),
        sa.CheckConstraint("kind = 'ungradable' OR grade IS NOT NULL", name=op.f("ck_annotations_gradable_has_grade")),
        _one_of("kind", ("grade-only", "partial", "full", "ungradable"), "ck_annotations_kind"),
    )
    op.create_index(op.f("ix_annotations_image_id_annotator_id"), "annotations", ["image_id", "annotator_id"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("status", ENUM, nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", TIMESTAMP, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(128), nullable=True),
        sa.Column("result", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name=op.f("ck_jobs_progress_fraction")),
        sa.CheckConstraint("max_attempts >= 1", name=op.f("ck_jobs_max_attempts_positive")),
        _one_of("status", ("queued", "running", "done", "failed"), "ck_jobs_status"),
    )
    op.create_index(op.f("ix_jobs_status_id"), "jobs", ["status", "id"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_audit_log_user_id_users")),
    )
    op.create_index(op.f("ix_audit_log_user_id"), "audit_log", ["user_id"])
    op.create_index(op.f("ix_audit_log_object_type_object_id"), "audit_log", ["object_type", "object_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_log_object_type_object_id"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_user_id"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index(op.f("ix_jobs_status_id"), table_name="jobs")
    op.drop_table("jobs")
    op.drop_index(op.f("ix_annotations_image_id_annotator_id"), table_name="annotations")
    op.drop_table("annotations")
    op.drop_index(op.f("ix_predictions_image_id"), table_name="predictions")
    op.drop_table("predictions")
    op.drop_index("uq_model_versions_one_active", table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_index(op.f("ix_images_patient_id"), table_name="images")
    op.drop_table("images")
    op.drop_table("users")
