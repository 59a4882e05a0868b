"""Review page: display-size derivatives on predictions, and server-side review drafts.

Revision ID: 0004
Revises: 0005
Create Date: 2026-12-01

``predictions.display_hashes`` names the display-size photograph and maps the review page shows (NULL for rows
stored before: the app makes them on first view and records them). ``review_drafts`` keeps a clinician's unsaved
correction of an image so that a browser refresh does not lose it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.migrations._ddl import JSON, TIMESTAMP

revision: str = "0004"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD / DROP COLUMN (SQLite 3.35+), never a batch table copy (it would drop triggers; see 0005).
    op.add_column("predictions", sa.Column("display_hashes", JSON, nullable=True))
    op.create_table(
        "review_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("document", JSON, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_drafts")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_review_drafts_user_id_users")),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name=op.f("fk_review_drafts_image_id_images")),
        sa.UniqueConstraint("user_id", "image_id", name=op.f("uq_review_drafts_user_id_image_id")),
    )


def downgrade() -> None:
    op.drop_table("review_drafts")
    op.drop_column("predictions", "display_hashes")
