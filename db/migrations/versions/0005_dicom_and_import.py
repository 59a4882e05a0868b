"""DICOM metadata on images (acquisition date, camera model) and imported reference annotations.

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("acquisition_date", sa.Date(), nullable=True))
        batch.add_column(sa.Column("device_model", sa.String(128), nullable=True))
    with op.batch_alter_table("annotations") as batch:
        batch.add_column(sa.Column("imported", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("annotations") as batch:
        batch.drop_column("imported")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("device_model")
        batch.drop_column("acquisition_date")
