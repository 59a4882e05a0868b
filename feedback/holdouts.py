"""Frozen reference sets in the database: the retraining gate's hold-out and real healthy photographs to replay.

Registration (``drgnet model holdout register NAME FOLDER``) reads a labelled folder (any layout of
``drgnet.data.readers``), stores each photograph exactly as an upload is stored (metadata-free PNG, named by its
sha256, in the photograph store but NOT in the ``images`` table, so it never reaches the worklist) and its reference
lesion masks in the artifact store, and registers the set under a name that can never be reused. Changing a set
means registering a new one; the registered digest is checked every time a set is used.

Why the checks: a gate that has never seen a healthy eye from a real camera cannot notice a model that learned
"real camera = disease" from a batch of corrected DR cases (issue 16). So a hold-out must hold every ICDR grade and
healthy (grade 0) photographs, and the gate needs enough photographs for its figures to mean something
(``RetrainConfig.min_holdout_images``). A healthy replay set holds only grade 0.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from db import repository
from db.artifacts import artifact_store, image_store
from db.ingest import prepare_image
from db.models import Holdout, HoldoutPurpose
from db.repository import HoldoutMember
from drgnet.data import Sample
from drgnet.data.preprocess import load_rgb
from drgnet.labels import LESIONS, NUM_GRADES, NUM_LESIONS

#: Fewer healthy photographs than this and the specificity a gate reports is too coarse to notice a change.
DEFAULT_MIN_HEALTHY = 1


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG")
    return buf.getvalue()


def check_coverage(name: str, grades: Sequence[int], purpose: HoldoutPurpose, min_healthy: int) -> None:
    """Refuse a set the gate (or the replay) cannot rely on; the message says what is missing.

    Raises:
        ValueError: a hold-out without every grade or with too few healthy photographs; a replay set with a
            photograph that is not grade 0.
    """
    counts = Counter(grades)
    if purpose is HoldoutPurpose.HEALTHY_REPLAY:
        sick = {g: n for g, n in counts.items() if g != 0}
        if sick:
            raise ValueError(
                f"{name}: a healthy replay set holds only grade 0 photographs; found grades "
                + ", ".join(f"{g} (x{n})" for g, n in sorted(sick.items()))
            )
        return
    missing = [g for g in range(NUM_GRADES) if counts.get(g, 0) == 0]
    if missing:
        raise ValueError(
            f"{name}: a hold-out must hold every ICDR grade so the gate sees each; no photograph of grade "
            + ", ".join(map(str, missing))
            + f" (has {dict(sorted(counts.items()))})"
        )
    if counts.get(0, 0) < min_healthy:
        raise ValueError(
            f"{name}: a hold-out needs at least {min_healthy} healthy (grade 0) photographs, from the cameras the "
            f"corrections come from, so the gate can see false referrals; it has {counts.get(0, 0)}"
        )


def register_folder(
    session: Session,
    name: str,
    folder: str | os.PathLike[str],
    *,
    layout: str = "auto",
    purpose: HoldoutPurpose | str = HoldoutPurpose.HOLDOUT,
    source: str | None = None,
    assume_healthy: bool = False,
    min_healthy: int = DEFAULT_MIN_HEALTHY,
    description: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    actor_id: int | None = None,
    log: Callable[[str], None] = lambda m: None,
) -> Holdout:
    """Register the labelled photographs of ``folder`` as a frozen set called ``name`` (in the caller's
    transaction; the files are stored first, so a failed registration leaves only files ``db gc`` removes).

    Args:
        layout: The folder's dataset layout (``auto`` detects it).
        purpose: ``holdout`` (the gate's) or ``healthy-replay``.
        source: Camera or site of every photograph (default: what the reader says).
        assume_healthy: For a healthy replay set read from an unlabelled folder: every photograph is grade 0.
        min_healthy: Grade 0 photographs a hold-out needs at least.

    Raises:
        ValueError: naming the folder (or photograph) and the problem: unreadable, ungraded, a grade missing ...
    """
    from drgnet.data.readers import open_dataset

    purpose = HoldoutPurpose(purpose)
    if repository.get_holdout(session, name) is not None:
        raise ValueError(f"a hold-out called {name!r} already exists; hold-outs are frozen, register a new name")
    reader = open_dataset(folder, layout=layout)
    if len(reader) == 0:
        raise ValueError(f"{folder}: no photographs found")
    photos, masks_store = image_store(data_dir), artifact_store(data_dir)
    members: list[HoldoutMember] = []
    already_registered = repository.holdout_image_hashes(session)
    for i in range(len(reader)):
        sample = reader[i]
        label = f"{folder}: {sample.name}"
        grade = sample.grade
        if grade is None and assume_healthy and purpose is HoldoutPurpose.HEALTHY_REPLAY:
            grade = 0
        if grade is None:
            raise ValueError(
                f"{label}: has no grade; a reference set needs a grade for every photograph"
                + (
                    " (or --assume-healthy for a folder of healthy eyes)"
                    if purpose is HoldoutPurpose.HEALTHY_REPLAY
                    else ""
                )
            )
        prepared = prepare_image(_png(sample.image), f"{sample.name}.png")
        if prepared.sha256 in already_registered:
            raise ValueError(
                f"{label}: this photograph is already in a registered hold-out or replay set; a photograph the gate "
                "judges on must never be trained on, so one photograph belongs to one set"
            )
        photos.put_bytes(prepared.png, "png")
        hashes: dict[str, str] = {}
        if sample.masks is not None:
            for k, lesion in enumerate(LESIONS):
                if sample.lesion_known[k]:
                    hashes[lesion] = masks_store.put_png((sample.masks[k] > 0).astype(np.uint8) * 255)
        members.append(
            HoldoutMember(prepared.sha256, int(grade), f"{sample.name}.png", hashes, source or sample.source or None)
        )
        log(f"{i + 1}/{len(reader)} {sample.name}: grade {grade}, masks {','.join(hashes) or '-'}")
    check_coverage(f"{folder}", [m.grade for m in members], purpose, min_healthy)
    return repository.add_holdout(session, name, members, purpose=purpose, description=description, actor_id=actor_id)


class HoldoutSamples(Sequence[Sample]):
    """A registered set's photographs as ``drgnet`` Samples, read from the stores when asked for (a hold-out of
    full-size photographs would not fit in memory at once).

    A grade 0 photograph has every lesion map known and empty (ICDR grade 0: no lesion), so its pixels are
    negatives of every lesion's AUPR; other photographs know the lesions they have masks for.
    """

    def __init__(self, members: Sequence[HoldoutMember], data_dir: str | os.PathLike[str] | None, set_name: str):
        self.members = list(members)
        self.data_dir = data_dir
        self.set_name = set_name

    def __len__(self) -> int:
        return len(self.members)

    @property
    def grades(self) -> list[int]:
        return [m.grade for m in self.members]

    def __getitem__(self, i: int) -> Sample:  # type: ignore[override]
        m = self.members[i]
        try:
            image = load_rgb(io.BytesIO(image_store(self.data_dir).get_bytes(m.image_sha256)))
        except FileNotFoundError:
            raise ValueError(
                f"hold-out {self.set_name!r}: the photograph {m.original_filename} ({m.image_sha256[:12]}...) is "
                "missing from the photograph store; restore it from a backup"
            ) from None
        h, w = image.shape[:2]
        masks = np.zeros((NUM_LESIONS, h, w), np.uint8)
        known = [m.grade == 0] * NUM_LESIONS
        store = artifact_store(self.data_dir)
        for k, lesion in enumerate(LESIONS):
            digest = m.mask_hashes.get(lesion)
            if digest:
                mask = store.get_png(digest)
                if mask.shape[:2] != (h, w):
                    raise ValueError(
                        f"hold-out {self.set_name!r}: {m.original_filename}: the {lesion} mask is "
                        f"{mask.shape[1]}x{mask.shape[0]}, the photograph {w}x{h}"
                    )
                masks[k] = mask > 0
                known[k] = True
        return Sample(
            image=image,
            name=Path(m.original_filename).stem,
            source=m.source or f"holdout:{self.set_name}",
            grade=m.grade,
            masks=masks,
            lesion_known=tuple(known),
        )


def load_set(session: Session, holdout: Holdout, data_dir: str | os.PathLike[str] | None) -> HoldoutSamples:
    """A registered set's photographs, after checking its digest (see :func:`db.repository.holdout_members`)."""
    return HoldoutSamples(repository.holdout_members(session, holdout), data_dir, holdout.name)


def gate_holdout(session: Session, name: str = "") -> Holdout:
    """The hold-out a retraining run evaluates on: ``name``, else the one registered last.

    Raises:
        ValueError: none registered (retraining refuses to run), or no hold-out called ``name``.
    """
    if name:
        holdout = repository.get_holdout(session, name)
        if holdout is None or holdout.purpose is not HoldoutPurpose.HOLDOUT:
            known = ", ".join(h.name for h in repository.list_holdouts(session, purpose=HoldoutPurpose.HOLDOUT))
            raise ValueError(f"no hold-out called {name!r} is registered (registered: {known or 'none'})")
        return holdout
    registered = repository.list_holdouts(session, purpose=HoldoutPurpose.HOLDOUT)
    if not registered:
        raise ValueError(
            "no frozen hold-out is registered in the database, and retraining never runs without one: register a "
            "labelled folder that holds every grade and healthy photographs from your cameras with "
            "`drgnet model holdout register NAME FOLDER`"
        )
    return registered[-1]


__all__ = ["HoldoutSamples", "check_coverage", "gate_holdout", "load_set", "register_folder"]
