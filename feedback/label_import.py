"""Existing datasets' labels in: an IDRiD, DDR or FGADR folder loaded as reference annotations (flagged imported).

Each photograph is ingested exactly as an upload is (``feedback.intake``: validated, oriented, metadata stripped,
deduplicated by content, so a photograph clinicians already graded is matched, not stored twice). Its grade and the
lesion masks the dataset holds become one annotation with ``imported = True``, written by a disabled account named
after the dataset (``reference-<name>``): nobody signs in as it, and the dashboard compares the model and the
clinicians with it. Imported annotations are not corrections: the export leaves them out.

A photograph the dataset gives lesion masks but no grade (IDRiD's segmentation part) is reported and skipped, since
an annotation always carries a grade; import the dataset's grading part, or DDR / FGADR, which carry both.
Importing the same folder again adds nothing: a photograph that already has this reference's annotation is skipped.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from db import repository
from db.artifacts import artifact_store
from db.ingest import ingest_image
from db.models import AnnotationKind, Role
from drgnet.data import Sample
from drgnet.data.readers import open_dataset
from drgnet.labels import LESIONS
from feedback.intake import Intake, prepare_upload
from feedback.masks import encode_full

REFERENCE_PREFIX = "reference-"


@dataclass
class ImportSummary:
    """What an import did."""

    reference: str
    imported: int = 0
    already: int = 0
    refused: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = f"reference {self.reference}: {self.imported} photographs' labels imported"
        if self.already:
            text += f", {self.already} already imported"
        if self.refused:
            text += f", {len(self.refused)} not imported"
        return text


def reference_username(name: str) -> str:
    """The account that owns a reference's annotations, from its name."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._") or "dataset"
    return (REFERENCE_PREFIX + clean)[:64]


def reference_account(session: Session, name: str) -> int:
    """The disabled account of a reference dataset (created on first use); returns its id."""
    username = reference_username(name)
    user = repository.get_user(session, username)
    if user is None:
        # A random password nobody knows, and the account disabled at once: it only owns imported annotations.
        user = repository.create_user(session, username, secrets.token_urlsafe(32), Role.CLINICIAN)
        repository.disable_user(session, username)
    return user.id


def _prepared(sample: Sample) -> tuple[Intake, dict[str, np.ndarray]]:
    """The photograph as it will be stored, and the lesion masks the dataset knows (lesion -> ``(H, W)`` mask).

    Raises:
        ValueError: the sample has no grade, or its photograph or masks cannot be stored.
    """
    if sample.grade is None:
        raise ValueError(f"{sample.path}: no grade in the dataset (an annotation needs one)")
    intake = prepare_upload(Path(sample.path).read_bytes(), Path(sample.path).name)
    if sample.masks is None:
        return intake, {}
    if sample.masks.shape[1:] != (intake.prepared.height, intake.prepared.width):
        raise ValueError(f"{sample.path}: its masks do not match the stored photograph's size")
    return intake, {lesion: sample.masks[k] for k, lesion in enumerate(LESIONS) if sample.lesion_known[k]}


def import_reference_labels(
    sessions: sessionmaker[Session],
    root: str | os.PathLike[str],
    *,
    layout: str = "auto",
    split: str | None = None,
    name: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    operator: str | None = None,
    actor_id: int | None = None,
) -> ImportSummary:
    """Load a dataset folder's labels into the database, one transaction per photograph.

    Raises:
        ValueError: the folder does not hold the layout (the reader's message says what it expected).
    """
    reader = open_dataset(Path(root), layout=layout, split=split)
    reference = name or reader.layout
    summary = ImportSummary(reference)
    with sessions.begin() as session:
        annotator_id = reference_account(session, reference)
    store = artifact_store(data_dir)
    for index in range(len(reader)):
        try:
            sample = reader[index]
            intake, known = _prepared(sample)
        except (ValueError, OSError) as exc:
            summary.refused.append(str(exc))
            continue
        masks = {lesion: store.put_png(encode_full(mask)) for lesion, mask in known.items()}
        with sessions.begin() as session:
            image = ingest_image(
                session,
                b"",
                intake.filename,
                data_dir=data_dir,
                source=f"{REFERENCE_PREFIX}{reference}"[:128],
                prepared=intake.prepared,
                eye=intake.eye or "unknown",
                acquisition_date=intake.acquisition_date,
                device_model=intake.device_model,
                uploaded_by_id=actor_id,
            ).image
            if repository.annotations_for_image(session, image.id, annotator_id=annotator_id):
                summary.already += 1
                continue
            repository.add_annotation(
                session,
                image.id,
                annotator_id,
                kind=AnnotationKind.FULL if masks else AnnotationKind.GRADE_ONLY,
                grade=sample.grade,
                mask_hashes=masks,
                comment=f"imported from {reader.layout} ({sample.name})",
                imported=True,
            )
            summary.imported += 1
    with sessions.begin() as session:
        repository.record_event(
            session,
            "dataset.import",
            "dataset",
            actor_id=actor_id,
            details={
                "reference": reference,
                "layout": reader.layout,
                "root": str(root),
                "imported": summary.imported,
                "already": summary.already,
                "refused": len(summary.refused),
                "operator": operator,
            },
        )
    return summary
