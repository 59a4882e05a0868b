"""Alembic migrations of the DRG-Net database; run them with ``drgnet db upgrade`` (see :mod:`db.migrate`)."""
