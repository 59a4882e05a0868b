"""The file hashes the database refers to: what garbage collection of the file stores (:mod:`db.artifacts`) keeps."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.hashing import is_sha256
from db.models import Annotation, HoldoutImage, Image, Prediction


def _hashes_in(document: Any) -> Iterator[str]:
    # JSON columns may nest (e.g. {"MA": {"positive": h1, "negative": h2}}): take every hash-shaped string.
    if isinstance(document, str):
        if is_sha256(document):
            yield document
    elif isinstance(document, Mapping):
        for value in document.values():
            yield from _hashes_in(value)
    elif isinstance(document, list | tuple):
        for value in document:
            yield from _hashes_in(value)


def referenced_artifact_hashes(session: Session) -> set[str]:
    """Every artifact hash that a prediction (maps, display derivatives) or an annotation (masks) refers to."""
    found: set[str] = set()
    rows = session.execute(
        select(Prediction.lesion_map_hashes, Prediction.attention_map_hash, Prediction.display_hashes)
    ).yield_per(1000)
    for lesion_maps, attention, display in rows:
        found.update(_hashes_in(lesion_maps))
        found.update(_hashes_in(display))
        if attention:
            found.add(attention)
    for (masks,) in session.execute(select(Annotation.mask_hashes)).yield_per(1000):
        found.update(_hashes_in(masks))
    for (masks,) in session.execute(select(HoldoutImage.mask_hashes)).yield_per(1000):
        found.update(_hashes_in(masks))
    return found


def referenced_image_hashes(session: Session) -> set[str]:
    """The hashes of all stored photographs that image rows or registered hold-outs refer to."""
    return set(session.scalars(select(Image.sha256))) | set(session.scalars(select(HoldoutImage.image_sha256)))
