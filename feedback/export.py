"""Clinicians' corrections out as a dataset: IDRiD's layout, a grades CSV, or COCO RLE JSON, with a manifest.

What is exported per photograph is its *current* corrected label: each annotator's latest annotation (imported
reference labels are not corrections and are left out), either combined (``consensus``: the reliability-weighted
vote of :mod:`feedback.weak_labels`, without the training-only tolerance band) or one record per annotator
(``per-annotator``). ``since`` keeps photographs whose current label was written on or after that date.

Layouts (``OUT`` is the output folder):

- ``idrid``: ``A. Segmentation/1. Original Images/a. Training Set/DRG_000042.png`` and
  ``A. Segmentation/2. All Segmentation Groundtruths/a. Training Set/1. Microaneurysms/DRG_000042_MA.tif`` (... HE,
  EX, SE), holding only photographs whose four lesion maps are completely known (IDRiD reads a missing mask file as
  "lesion absent", so a partly painted map cannot be written there); and ``B. Disease Grading/1. Original
  Images/a. Training Set`` with ``B. Disease Grading/2. Groundtruths/a. IDRiD_Disease Grading_Training Labels.csv``
  (``Image name``, ``Retinopathy grade``) for every gradable photograph. ``drgnet.data.readers`` reads it back.
- ``csv``: ``labels.csv``, one row per photograph (or per annotator): grade, kinds, annotators, lesion areas, the
  model version that proposed the label; photographs under ``images/``; masks under ``masks/`` as PNG.
- ``coco``: ``annotations.json`` in COCO's format with one run-length-encoded (``iscrowd=1``) segmentation per
  photograph and lesion (pycocotools' RLE), categories MA, HE, EX, SE, the grade on each image entry;
  photographs under ``images/``.

Every export writes ``manifest.json``: the sha256 of every file, per photograph the annotation ids, the
pseudonymous annotators (``annotator-<user id>``; no user names), the model versions whose predictions the
annotators corrected, and the annotators' consensus weights. The export is audited (``dataset.export``).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from db import repository
from db.artifacts import artifact_store, image_store
from db.models import Annotation, Image
from drgnet.labels import LESIONS, NUM_LESIONS
from feedback.weak_labels import combine_votes, current_corrections, decode_vote

FORMATS = ("idrid", "csv", "coco")
Mode = Literal["consensus", "per-annotator"]
IDRID_SEG = "A. Segmentation"
IDRID_GRADING = "B. Disease Grading"
IDRID_SET = "a. Training Set"
IDRID_LESION_DIRS = {
    "MA": "1. Microaneurysms",
    "HE": "2. Haemorrhages",
    "EX": "3. Hard Exudates",
    "SE": "4. Soft Exudates",
}
IDRID_LABELS = "a. IDRiD_Disease Grading_Training Labels.csv"
MANIFEST = "manifest.json"


def pseudonym(user_id: int) -> str:
    """An annotator's id in exports: the account's number, never its name."""
    return f"annotator-{user_id}"


@dataclass
class ExportRecord:
    """One exported label: a photograph's consensus, or one annotator's opinion of it."""

    image: Image
    name: str  # file stem in the export
    grade: int | None  # None: ungradable
    masks: np.ndarray | None  # (4, H, W) bool lesion present, or None (no pixel labels)
    known: np.ndarray | None  # (4, H, W) bool pixels with a label
    annotators: tuple[str, ...]
    kinds: tuple[str, ...]
    annotation_ids: tuple[int, ...]
    model_versions: tuple[str, ...]
    written_at: str

    def lesion_fully_known(self) -> tuple[bool, ...]:
        if self.known is None:
            return (False,) * NUM_LESIONS
        return tuple(bool(self.known[k].all()) for k in range(NUM_LESIONS))


@dataclass
class ExportResult:
    """What an export wrote."""

    out: Path
    format: str
    mode: str
    records: int
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    weights: dict[str, float] = field(default_factory=dict)


def _proposer(session: Session, annotation: Annotation) -> str | None:
    if annotation.based_on_prediction_id is None:
        return None
    prediction = repository.get_prediction(session, annotation.based_on_prediction_id)
    if prediction is None:
        return None
    if prediction.model_version is not None:
        return prediction.model_version.name
    return prediction.model_name


def _since(since: dt.date | dt.datetime | None) -> dt.datetime | None:
    if since is None:
        return None
    if not isinstance(since, dt.datetime):
        since = dt.datetime.combine(since, dt.time())
    return since if since.tzinfo else since.replace(tzinfo=dt.UTC)


def collect_records(
    session: Session, *, data_dir: str | os.PathLike[str] | None = None, mode: Mode = "consensus", since=None
) -> tuple[Iterator[ExportRecord], dict[int, float]]:
    """The current labels to export (decoded one photograph at a time, so an export of thousands of large
    photographs holds one set of masks in memory), and every annotator's reliability weight (user id -> weight)."""
    if mode not in ("consensus", "per-annotator"):
        raise ValueError(f"unknown export mode {mode!r}; choose consensus or per-annotator")
    everything, weights = current_corrections(session)
    by_image: dict[int, list[Annotation]] = {}
    for a in everything:
        by_image.setdefault(a.image_id, []).append(a)
    return _records(session, by_image, weights, artifact_store(data_dir), mode, _since(since)), weights


def _records(
    session: Session,
    by_image: dict[int, list[Annotation]],
    weights: dict[int, float],
    store: Any,
    mode: str,
    cutoff: dt.datetime | None,
) -> Iterator[ExportRecord]:
    for image_id, current in sorted(by_image.items()):
        latest = max(a.created_at for a in current)
        if cutoff is not None and latest < cutoff:
            continue
        image = repository.get_image(session, image_id)
        shape = (image.height, image.width)
        votes = {a.id: decode_vote(a, store, shape, tolerance_px=0) for a in current}
        base = f"DRG_{image_id:06d}"
        if mode == "per-annotator":
            for a in current:
                vote = votes[a.id]
                yield (
                    ExportRecord(
                        image=image,
                        name=f"{base}_{pseudonym(a.annotator_id)}",
                        grade=vote.grade,
                        masks=vote.positive,
                        known=vote.supervised,
                        annotators=(pseudonym(a.annotator_id),),
                        kinds=(a.kind.value,),
                        annotation_ids=(a.id,),
                        model_versions=tuple(v for v in [_proposer(session, a)] if v),
                        written_at=a.created_at.isoformat(),
                    )
                )
            continue
        label = combine_votes(image_id, list(votes.values()), weights)
        yield (
            ExportRecord(
                image=image,
                name=base,
                grade=None if label is None else label.grade,
                masks=None if label is None else label.masks.astype(bool),
                known=None if label is None else label.supervised,
                annotators=tuple(pseudonym(a.annotator_id) for a in current),
                kinds=tuple(sorted({a.kind.value for a in current})),
                annotation_ids=tuple(a.id for a in current),
                model_versions=tuple(sorted({v for a in current if (v := _proposer(session, a))})),
                written_at=latest.isoformat(),
            )
        )


class _Writer:
    """Writes files under the output folder and remembers each one's sha256 for the manifest."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.files: dict[str, str] = {}

    def write(self, relative: str, data: bytes) -> None:
        path = self.out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        self.files[relative] = hashlib.sha256(data).hexdigest()


def _mask_bytes(mask: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(
        buf, format=fmt, **({"compression": "tiff_lzw"} if fmt == "TIFF" else {})
    )
    return buf.getvalue()


def _photo(record: ExportRecord, data_dir) -> bytes:
    return image_store(data_dir).get_bytes(record.image.sha256)


def _write_idrid(w: _Writer, records: Iterable[ExportRecord], data_dir) -> None:
    rows = []
    for r in records:
        photo = _photo(r, data_dir)
        if r.grade is not None:
            w.write(f"{IDRID_GRADING}/1. Original Images/{IDRID_SET}/{r.name}.png", photo)
            rows.append({"Image name": r.name, "Retinopathy grade": r.grade})
        if r.masks is not None and all(r.lesion_fully_known()):
            w.write(f"{IDRID_SEG}/1. Original Images/{IDRID_SET}/{r.name}.png", photo)
            for k, lesion in enumerate(LESIONS):
                if r.masks[k].any():  # IDRiD leaves out the file of a lesion the photograph does not show
                    folder = f"{IDRID_SEG}/2. All Segmentation Groundtruths/{IDRID_SET}/{IDRID_LESION_DIRS[lesion]}"
                    w.write(f"{folder}/{r.name}_{lesion}.tif", _mask_bytes(r.masks[k], "TIFF"))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, ["Image name", "Retinopathy grade"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    w.write(f"{IDRID_GRADING}/2. Groundtruths/{IDRID_LABELS}", buf.getvalue().encode())


def _write_csv(w: _Writer, records: Iterable[ExportRecord], data_dir) -> None:
    columns = [
        "image",
        "grade",
        "ungradable",
        "annotators",
        "kinds",
        "model_versions",
        "written_at",
        "width",
        "height",
        "eye",
        *(f"{lesion}_{key}" for lesion in LESIONS for key in ("known", "area_fraction")),
    ]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n")
    writer.writeheader()
    for r in records:
        w.write(f"images/{r.name}.png", _photo(r, data_dir))
        row: dict[str, Any] = {
            "image": f"images/{r.name}.png",
            "grade": "" if r.grade is None else r.grade,
            "ungradable": r.grade is None,
            "annotators": " ".join(r.annotators),
            "kinds": " ".join(r.kinds),
            "model_versions": " ".join(r.model_versions),
            "written_at": r.written_at,
            "width": r.image.width,
            "height": r.image.height,
            "eye": r.image.eye.value,
        }
        known = r.lesion_fully_known()
        for k, lesion in enumerate(LESIONS):
            row[f"{lesion}_known"] = known[k]
            row[f"{lesion}_area_fraction"] = round(float(r.masks[k].mean()), 6) if known[k] else ""
            if r.masks is not None and r.known is not None and r.known[k].any():
                # 0 unknown, 1 absent, 255 present: partial knowledge survives in the PNG.
                coded = np.where(r.known[k], np.where(r.masks[k], 255, 1), 0).astype(np.uint8)
                buf_png = io.BytesIO()
                PILImage.fromarray(coded, mode="L").save(buf_png, format="PNG")
                w.write(f"masks/{r.name}_{lesion}.png", buf_png.getvalue())
        writer.writerow(row)
    w.write("labels.csv", buf.getvalue().encode())


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """COCO's compressed RLE of a ``(H, W)`` bool mask (pycocotools), ``counts`` as text for JSON."""
    from pycocotools import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """The ``(H, W)`` bool mask of a COCO RLE as :func:`rle_encode` writes it."""
    from pycocotools import mask as coco_mask

    return coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


def _write_coco(w: _Writer, records: Iterable[ExportRecord], data_dir) -> None:
    images, annotations = [], []
    for i, r in enumerate(records, start=1):
        w.write(f"images/{r.name}.png", _photo(r, data_dir))
        known = r.lesion_fully_known()
        images.append(
            {
                "id": i,
                "file_name": f"images/{r.name}.png",
                "width": r.image.width,
                "height": r.image.height,
                "grade": r.grade,
                "lesions_known": [lesion for k, lesion in enumerate(LESIONS) if known[k]],
                "annotators": list(r.annotators),
            }
        )
        if r.masks is None:
            continue
        for k in range(NUM_LESIONS):
            if not known[k] or not r.masks[k].any():
                continue
            ys, xs = np.nonzero(r.masks[k])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": k + 1,
                    "segmentation": rle_encode(r.masks[k]),
                    "area": int(r.masks[k].sum()),
                    "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)],
                    "iscrowd": 1,
                }
            )
    document = {
        "info": {"description": "DRG-Net corrected labels", "date_created": dt.datetime.now(dt.UTC).isoformat()},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": lesion, "supercategory": "lesion"} for k, lesion in enumerate(LESIONS)],
    }
    w.write("annotations.json", json.dumps(document, indent=1).encode())


_WRITERS = {"idrid": _write_idrid, "csv": _write_csv, "coco": _write_coco}


def export_dataset(
    session: Session,
    out: str | os.PathLike[str],
    *,
    format: str,
    mode: Mode = "consensus",
    since: dt.date | dt.datetime | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    actor_id: int | None = None,
    operator: str | None = None,
) -> ExportResult:
    """Write the current corrected labels to ``out`` and audit the export (in the caller's transaction).

    Raises:
        ValueError: an unknown format or mode, or an output folder that is not empty.
    """
    if format not in _WRITERS:
        raise ValueError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out}: the output folder exists and is not empty; choose a new one")
    records, weights = collect_records(session, data_dir=data_dir, mode=mode, since=since)
    pseudo_weights = {pseudonym(u): round(float(v), 6) for u, v in sorted(weights.items())}
    out.mkdir(parents=True, exist_ok=True)
    writer = _Writer(out)
    summaries: list[dict[str, Any]] = []

    def summarised(stream: Iterable[ExportRecord]) -> Iterator[ExportRecord]:
        for r in stream:  # what the manifest needs, without the masks
            summaries.append(
                {
                    "name": r.name,
                    "image_sha256": r.image.sha256,
                    "grade": r.grade,
                    "annotators": list(r.annotators),
                    "weights": {a: pseudo_weights.get(a, 1.0) for a in r.annotators},
                    "kinds": list(r.kinds),
                    "annotation_ids": list(r.annotation_ids),
                    "proposed_by_model_versions": list(r.model_versions),
                    "lesions_fully_known": dict(zip(LESIONS, r.lesion_fully_known(), strict=True)),
                    "written_at": r.written_at,
                }
            )
            yield r

    _WRITERS[format](writer, summarised(records), data_dir)
    manifest = {
        "format": format,
        "mode": mode,
        "since": since.isoformat() if since is not None else None,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "lesions": list(LESIONS),
        "consensus": "reliability-weighted median grade and weighted pixel vote (feedback.weak_labels)",
        "annotator_weights": pseudo_weights,
        "records": summaries,
        "files": dict(sorted(writer.files.items())),
    }
    data = json.dumps(manifest, indent=1).encode()
    (out / MANIFEST).write_bytes(data)
    repository.record_event(
        session,
        "dataset.export",
        "dataset",
        actor_id=actor_id,
        details={
            "format": format,
            "mode": mode,
            "since": manifest["since"],
            "records": len(summaries),
            "files": len(writer.files),
            "manifest_sha256": hashlib.sha256(data).hexdigest(),
            "out": str(out),
            "operator": operator,
        },
    )
    return ExportResult(out, format, mode, len(summaries), dict(writer.files), pseudo_weights)
