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


# Plain ADD / DROP COLUMN (SQLite 3.35+), never a batch table copy: copying annotations would drop its append-only
# triggers (0002) and break the tables that refer to it.


def upgrade() -> None:
    op.add_column("images", sa.Column("acquisition_date", sa.Date(), nullable=True))
    op.add_column("images", sa.Column("device_model", sa.String(128), nullable=True))
    op.add_column("annotations", sa.Column("imported", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("annotations", "imported")
    op.drop_column("images", "device_model")
    op.drop_column("images", "acquisition_date")
