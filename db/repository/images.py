"""Photographs: stored once by content hash, with their source, eye and pseudonymous patient."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from db.hashing import is_sha256
from db.models import Eye, Image, utcnow
from db.repository.audit import _audit


def add_image(
    session: Session,
    *,
    sha256: str,
    path: str,
    original_filename: str,
    width: int,
    height: int,
    eye: Eye | str = Eye.UNKNOWN,
    patient_id: str | None = None,
    source: str | None = None,
    uploaded_by_id: int | None = None,
    acquisition_date: date | None = None,
    device_model: str | None = None,
) -> tuple[Image, bool]:
    """Record a stored photograph, or return the existing row with the same sha256.

    Use :func:`db.ingest.ingest_image` for uploads: it validates and stores the file first. Two sessions adding the
    same photograph at once both get the one row (``INSERT ... ON CONFLICT DO NOTHING``).

    Returns:
        ``(image, created)``; ``created`` is False when the photograph was already known.
    """
    if not is_sha256(sha256):
        raise ValueError(f"{sha256!r} is not a sha256 hex digest")
    try:
        eye = Eye(eye)
    except ValueError:
        raise ValueError(f"unknown eye {eye!r}; choose one of {', '.join(e.value for e in Eye)}") from None
    values = {
        "sha256": sha256,
        "path": path,
        "original_filename": original_filename[:255],
        "width": int(width),
        "height": int(height),
        "eye": eye,
        "patient_id": patient_id,
        "source": source,
        "uploaded_by_id": uploaded_by_id,
        "created_at": utcnow(),
        "acquisition_date": acquisition_date,
        "device_model": device_model[:128] if device_model else None,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(Image).values(**values).on_conflict_do_nothing(index_elements=["sha256"]).returning(Image.id)
    new_id = session.execute(stmt).scalar_one_or_none()
    image = session.scalars(select(Image).where(Image.sha256 == sha256).execution_options(populate_existing=True)).one()
    if new_id is not None:
        _audit(
            session,
            "image.add",
            "image",
            image.id,
            uploaded_by_id,
            {"sha256": sha256, "original_filename": values["original_filename"], "source": source},
        )
    return image, new_id is not None


def get_image(session: Session, image_id: int) -> Image | None:
    """The image with id ``image_id``, or None."""
    return session.get(Image, image_id)


def count_images(session: Session) -> int:
    """How many photographs the database holds."""
    return int(session.scalar(select(func.count()).select_from(Image)) or 0)


def get_image_by_sha(session: Session, sha256: str) -> Image | None:
    """The image whose stored file has this sha256, or None."""
    return session.scalars(select(Image).where(Image.sha256 == sha256)).one_or_none()
