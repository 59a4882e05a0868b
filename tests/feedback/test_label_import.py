"""drgnet import-labels: an FGADR / IDRiD folder loaded as imported reference annotations, matched to photographs
clinicians already graded, compared on the dashboard, and left out of exports; on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select
from typer.testing import CliRunner

from db import migrate, repository
from db.artifacts import artifact_store
from db.engine import make_engine, make_sessionmaker
from db.ingest import ingest_image
from db.models import Annotation, Image
from drgnet.cli import _load_plugins, app
from drgnet.labels import LESIONS
from feedback.export import export_dataset
from feedback.label_import import import_reference_labels, reference_username
from feedback.masks import decode_full
from webapp.stats import reference_comparison

H, W = 40, 56


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(seed)
    PILImage.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _fgadr(root: Path) -> Path:
    """Three photographs with grades 2, 0, 4; a haemorrhage pixel on the first."""
    seg = root / "Seg-set"
    for i, name in enumerate(("0001_2", "0002_1", "0003_4")):
        (seg / "Original_Images").mkdir(parents=True, exist_ok=True)
        (seg / "Original_Images" / f"{name}.png").write_bytes(_png(i))
        for folder in ("Microaneurysms_Masks", "Hemohedge_Masks", "HardExudate_Masks", "SoftExudate_Masks"):
            (seg / folder).mkdir(exist_ok=True)
            mask = np.zeros((H, W), np.uint8)
            if name == "0001_2" and folder == "Hemohedge_Masks":
                mask[12, 13] = 255
            PILImage.fromarray(mask).save(seg / folder / f"{name}.png")
    (seg / "DR_Seg_Grading_Label.csv").write_text("0001_2.png,2\n0002_1.png,0\n0003_4.png,4\n")
    return root


@pytest.fixture
def clinic(db_url, data_dir, cheap_password_hashing):
    """Two photographs already in the clinic's database (the FGADR folder's first two), predicted and graded."""
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:
        doc = repository.create_user(s, "doc", "password-doc-1234", "clinician").id
        for i, (model_grade, doc_grade) in enumerate(((2, 3), (1, 0))):
            image = ingest_image(s, _png(i), f"clinic_{i}.png", data_dir=data_dir).image
            repository.add_prediction(s, image.id, grade=model_grade, probabilities=[0.2] * 5, model_name="m")
            repository.add_annotation(s, image.id, doc, kind="grade-only", grade=doc_grade)
    yield sessions
    engine.dispose()


def test_fgadr_labels_become_imported_reference_annotations(clinic, data_dir, tmp_path):
    root = _fgadr(tmp_path / "fgadr")
    summary = import_reference_labels(clinic, root, layout="fgadr", name="fgadr-test", data_dir=data_dir)
    assert (summary.imported, summary.already, summary.refused) == (3, 0, [])
    with clinic() as s:
        assert s.scalar(select(func.count()).select_from(Image)) == 3  # two matched by content, one new
        imported = list(s.scalars(select(Annotation).where(Annotation.imported)))
        assert len(imported) == 3 and all(a.kind.value == "full" for a in imported)
        owner = repository.get_user(s, reference_username("fgadr-test"))
        assert owner is not None and not owner.active  # nobody signs in as a reference
        first = next(a for a in imported if a.grade == 2)
        he = decode_full(artifact_store(data_dir).get_png(first.mask_hashes["HE"]))
        assert he.sum() == 1 and he[12, 13]
        assert set(first.mask_hashes) == set(LESIONS)
        assert [e.details["imported"] for e in repository.audit_entries(s, action="dataset.import")] == [3]
        assert not [a for a in s.scalars(select(Annotation).where(~Annotation.imported)) if a.annotator_id == owner.id]
    again = import_reference_labels(clinic, root, layout="fgadr", name="fgadr-test", data_dir=data_dir)
    assert (again.imported, again.already) == (0, 3)

    # Retraining learns only from the clinicians' corrections: their grades, on their two photographs.
    from feedback.weak_labels import collect_weak_labels

    with clinic() as s:
        labels, weights = collect_weak_labels(s, artifact_store(data_dir))
    assert sorted(label.grade for label in labels) == [0, 3] and len(weights) == 1

    # Exports carry only the clinicians' corrections.
    with clinic.begin() as s:
        result = export_dataset(s, tmp_path / "out", format="csv", data_dir=data_dir)
    assert result.records == 2


def test_a_dataset_without_grades_is_reported_not_imported(clinic, data_dir, tmp_path):
    seg = tmp_path / "idrid" / "A. Segmentation"
    (seg / "1. Original Images" / "a. Training Set").mkdir(parents=True)
    (seg / "1. Original Images" / "a. Training Set" / "IDRiD_01.png").write_bytes(_png(7))
    (seg / "2. All Segmentation Groundtruths" / "a. Training Set" / "1. Microaneurysms").mkdir(parents=True)
    summary = import_reference_labels(clinic, tmp_path / "idrid", layout="idrid-seg", data_dir=data_dir)
    assert summary.imported == 0
    assert len(summary.refused) == 1 and "no grade in the dataset" in summary.refused[0]


def test_reference_comparison_rows():
    rows = reference_comparison(
        reference={1: 2, 2: 0, 3: 4},
        model={1: 2, 2: 1, 3: 4},
        clinicians={1: {"doc": 3, "ann": 2}, 2: {"doc": 0}},
    )
    by = {r["rater"]: r for r in rows}
    assert [r["rater"] for r in rows] == ["model", "clinicians (all)", "ann", "doc"]
    assert by["model"]["photographs"] == 3 and by["model"]["agreement"] == pytest.approx(2 / 3)
    assert by["clinicians (all)"]["photographs"] == 3
    assert by["doc"]["agreement"] == 0.5 and by["ann"]["kappa"] is None  # one pair: undefined


def test_import_labels_command(clinic, db_url, data_dir, tmp_path):
    if not any(c.name == "import-labels" for c in app.registered_commands):
        _load_plugins()
    root = _fgadr(tmp_path / "fgadr")
    args = ["import-labels", str(root), "--layout", "fgadr", "--url", db_url, "--data-dir", str(data_dir)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "reference fgadr: 3 photographs' labels imported" in result.output
    bad = CliRunner().invoke(app, ["import-labels", str(tmp_path), "--layout", "ddr-seg", "--url", db_url])
    assert bad.exit_code == 2 and "DDR" in bad.output
