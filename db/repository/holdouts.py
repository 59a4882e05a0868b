"""Frozen hold-out and replay sets: registration with a digest, members, look-ups."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.hashing import is_sha256, sha256_hex
from db.models import Holdout, HoldoutImage, HoldoutPurpose
from db.repository._common import _check_grade, _check_hashes
from db.repository.audit import _audit


@dataclass(frozen=True)
class HoldoutMember:
    """One photograph of a hold-out as registered: its stored photograph's hash, reference grade and masks."""

    image_sha256: str
    grade: int
    original_filename: str
    mask_hashes: Mapping[str, str]
    source: str | None = None


def holdout_digest(members: Sequence[HoldoutMember]) -> str:
    """sha256 over the members in order (photograph hash, grade, sorted mask hashes): what "frozen" means."""
    lines = [
        f"{m.image_sha256} {int(m.grade)} " + ",".join(f"{k}={v}" for k, v in sorted(dict(m.mask_hashes).items()))
        for m in members
    ]
    return sha256_hex("\n".join(lines).encode())


def add_holdout(
    session: Session,
    name: str,
    members: Sequence[HoldoutMember],
    *,
    purpose: HoldoutPurpose | str = HoldoutPurpose.HOLDOUT,
    description: str | None = None,
    actor_id: int | None = None,
) -> Holdout:
    """Register a frozen set of labelled photographs (their files must already be stored).

    Raises:
        ValueError: a taken name, no members, a photograph listed twice, a bad grade or hash.
    """
    purpose = HoldoutPurpose(purpose)
    if not name or len(name) > 128:
        raise ValueError(f"hold-out name {name!r} must be 1-128 characters")
    if get_holdout(session, name) is not None:
        raise ValueError(f"a hold-out called {name!r} already exists; hold-outs are frozen, register a new name")
    if not members:
        raise ValueError(f"hold-out {name!r}: no photographs")
    seen: set[str] = set()
    for m in members:
        if not is_sha256(m.image_sha256):
            raise ValueError(f"hold-out {name!r}: {m.original_filename}: {m.image_sha256!r} is not a sha256")
        if m.image_sha256 in seen:
            raise ValueError(f"hold-out {name!r}: {m.original_filename} is listed twice (same photograph)")
        seen.add(m.image_sha256)
        _check_grade(m.grade, f"{m.original_filename}: grade")
        _check_hashes(m.mask_hashes, f"{m.original_filename}: mask_hashes")
    counts: dict[str, int] = {}
    for m in members:
        counts[str(int(m.grade))] = counts.get(str(int(m.grade)), 0) + 1
    holdout = Holdout(
        name=name,
        purpose=purpose,
        description=description,
        digest=holdout_digest(members),
        n_images=len(members),
        grade_counts=dict(sorted(counts.items())),
        created_by_id=actor_id,
    )
    session.add(holdout)
    session.flush()
    for position, m in enumerate(members):
        session.add(
            HoldoutImage(
                holdout_id=holdout.id,
                position=position,
                image_sha256=m.image_sha256,
                original_filename=m.original_filename[:255],
                grade=int(m.grade),
                mask_hashes=_check_hashes(m.mask_hashes, "mask_hashes"),
                source=m.source,
            )
        )
    session.flush()
    _audit(
        session,
        "holdout.register",
        "holdout",
        holdout.id,
        actor_id,
        {
            "name": name,
            "purpose": purpose.value,
            "n_images": len(members),
            "digest": holdout.digest,
            "grade_counts": holdout.grade_counts,
        },
    )
    return holdout


def get_holdout(session: Session, name: str) -> Holdout | None:
    """The hold-out called ``name``, or None."""
    return session.scalars(select(Holdout).where(Holdout.name == name)).one_or_none()


def list_holdouts(session: Session, *, purpose: HoldoutPurpose | str | None = None) -> list[Holdout]:
    """Registered hold-outs (of one purpose), oldest first."""
    query = select(Holdout)
    if purpose is not None:
        query = query.where(Holdout.purpose == HoldoutPurpose(purpose))
    return list(session.scalars(query.order_by(Holdout.id)))


def holdout_members(session: Session, holdout: Holdout) -> list[HoldoutMember]:
    """A hold-out's photographs in registration order, checked against its digest.

    Raises:
        ValueError: the rows no longer match what was registered (changed behind the code's back).
    """
    rows = session.scalars(
        select(HoldoutImage).where(HoldoutImage.holdout_id == holdout.id).order_by(HoldoutImage.position)
    ).all()
    members = [
        HoldoutMember(r.image_sha256, r.grade, r.original_filename, dict(r.mask_hashes or {}), r.source) for r in rows
    ]
    if len(members) != holdout.n_images or holdout_digest(members) != holdout.digest:
        raise ValueError(
            f"hold-out {holdout.name!r} was changed after registration (its photographs no longer match its "
            "digest); it cannot be trusted: register a new hold-out"
        )
    return members


def holdout_image_hashes(session: Session) -> set[str]:
    """The photograph hashes of every registered hold-out and healthy replay set."""
    return set(session.scalars(select(HoldoutImage.image_sha256)))
