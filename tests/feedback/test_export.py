"""drgnet export: corrected labels out as IDRiD (read back unchanged by our reader), CSV and COCO RLE, with a
manifest and an audit row; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from db import migrate, repository
from db.artifacts import artifact_store
from db.engine import make_engine, make_sessionmaker
from db.ingest import ingest_image
from drgnet.cli import _load_plugins, app
from drgnet.data.readers import IDRiDGradingReader, IDRiDSegmentationReader
from drgnet.labels import LESIONS
from feedback.export import export_dataset, rle_decode, rle_encode
from feedback.masks import encode_full, encode_partial

H, W = 48, 64


def _blobs(rng: np.random.Generator) -> np.ndarray:
    masks = np.zeros((len(LESIONS), H, W), bool)
    for k in range(len(LESIONS)):
        for _ in range(k + 1):
            y, x = rng.integers(2, H - 6), rng.integers(2, W - 6)
            masks[k, y : y + rng.integers(1, 5), x : x + rng.integers(1, 5)] = True
    return masks


class Corrected:
    """Four photographs with known corrections (see the test module's cases)."""

    def __init__(self, url: str, data_dir: Path) -> None:
        migrate.upgrade(url)
        self.engine = make_engine(url)
        self.sessions = make_sessionmaker(self.engine)
        self.data_dir = data_dir
        rng = np.random.default_rng(5)
        self.masks = _blobs(rng)
        store = artifact_store(data_dir)
        with self.sessions.begin() as s:
            alice = repository.create_user(s, "alice", "password-alice-123", "clinician").id
            bob = repository.create_user(s, "bob", "password-bob-12345", "clinician").id
            version = repository.add_model_version(s, "v7", "/models/v7", "a" * 64).id
            self.images = []
            for i in range(4):
                buf = io.BytesIO()
                PILImage.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(buf, format="PNG")
                self.images.append(ingest_image(s, buf.getvalue(), f"p{i}.png", data_dir=data_dir).image.id)
            pred = repository.add_prediction(
                s, self.images[0], grade=1, probabilities=[0.1, 0.5, 0.2, 0.1, 0.1], model_version_id=version
            ).id
            hashes = {name: store.put_png(encode_full(self.masks[k])) for k, name in enumerate(LESIONS)}
            # 1: alice's full masks (grade 2, correcting v7's prediction); bob's grade-only 3 -> consensus grade 2.
            repository.add_annotation(
                s, self.images[0], alice, kind="full", grade=2, mask_hashes=hashes, based_on_prediction_id=pred
            )
            repository.add_annotation(s, self.images[0], bob, kind="grade-only", grade=3)
            # 2: no DR: every lesion map known empty.
            repository.add_annotation(s, self.images[1], alice, kind="grade-only", grade=1)
            repository.add_annotation(s, self.images[1], alice, kind="grade-only", grade=0)  # latest counts
            # 3: strokes only: grade known, lesion maps not completely known.
            painted = np.zeros((H, W), bool)
            painted[10:14, 10:14] = True
            stroke = store.put_png(encode_partial(painted, np.zeros_like(painted)))
            repository.add_annotation(s, self.images[2], bob, kind="partial", grade=4, mask_hashes={"HE": stroke})
            # 4: ungradable.
            repository.add_annotation(s, self.images[3], alice, kind="ungradable")
        self.alice, self.bob = alice, bob

    def export(self, out: Path, fmt: str, **kw):
        with self.sessions.begin() as s:
            return export_dataset(s, out, format=fmt, data_dir=self.data_dir, **kw)

    def stored_pixels(self, index: int) -> np.ndarray:
        with self.sessions() as s:
            from db.ingest import read_image_bytes
            from db.models import Image

            data = read_image_bytes(s.get(Image, self.images[index]), self.data_dir)
        return np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture
def corrected(db_url, data_dir, cheap_password_hashing):
    db = Corrected(db_url, data_dir)
    yield db
    db.engine.dispose()


def _name(image_id: int) -> str:
    return f"DRG_{image_id:06d}"


def test_idrid_export_reads_back_unchanged(corrected, tmp_path):
    out = tmp_path / "idrid"
    result = corrected.export(out, "idrid")
    assert result.records == 4

    seg = IDRiDSegmentationReader(out, split="train")
    assert seg.names == [_name(corrected.images[0]), _name(corrected.images[1])]  # fully known maps only
    first, second = seg[0], seg[1]
    assert first.lesion_known == (True,) * 4
    assert (first.masks.astype(bool) == corrected.masks).all()
    assert not second.masks.any()  # grade 0: every lesion absent
    assert (first.image == corrected.stored_pixels(0)).all()

    grading = IDRiDGradingReader(out, split="train")
    grades = dict(zip(grading.names, grading.grades, strict=True))
    assert grades == {_name(corrected.images[0]): 2, _name(corrected.images[1]): 0, _name(corrected.images[2]): 4}
    assert (grading[0].image == corrected.stored_pixels(0)).all()


def test_manifest_hashes_every_file_and_names_no_one(corrected, tmp_path):
    out = tmp_path / "idrid"
    corrected.export(out, "idrid")
    manifest = json.loads((out / "manifest.json").read_text())
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == files
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    first = manifest["records"][0]
    assert first["proposed_by_model_versions"] == ["v7"]
    assert first["annotators"] == [f"annotator-{corrected.alice}", f"annotator-{corrected.bob}"]
    assert set(first["weights"]) == set(first["annotators"])
    assert set(manifest["annotator_weights"]) == {f"annotator-{corrected.alice}", f"annotator-{corrected.bob}"}
    for path in out.rglob("*"):
        if path.is_file():
            assert b"alice" not in path.read_bytes() and b"bob" not in path.read_bytes()
    with corrected.sessions() as s:
        (entry,) = [e for e in repository.audit_entries(s) if e.action == "dataset.export"]
    assert entry.details["format"] == "idrid" and entry.details["records"] == 4


def test_coco_rle_decodes_to_the_masks(corrected, tmp_path):
    out = tmp_path / "coco"
    corrected.export(out, "coco")
    doc = json.loads((out / "annotations.json").read_text())
    first = next(i for i in doc["images"] if i["file_name"].endswith(f"{_name(corrected.images[0])}.png"))
    assert first["grade"] == 2 and first["lesions_known"] == list(LESIONS)
    by_category = {a["category_id"]: a for a in doc["annotations"] if a["image_id"] == first["id"]}
    names = {c["id"]: c["name"] for c in doc["categories"]}
    for cat, ann in by_category.items():
        k = LESIONS.index(names[cat])
        assert (rle_decode(ann["segmentation"]) == corrected.masks[k]).all()
        assert ann["area"] == corrected.masks[k].sum()
    assert len(by_category) == 4
    # The partial photograph's map is not completely known: no COCO segmentation for it.
    third = next(i for i in doc["images"] if i["file_name"].endswith(f"{_name(corrected.images[2])}.png"))
    assert third["lesions_known"] == [] and not [a for a in doc["annotations"] if a["image_id"] == third["id"]]


def test_rle_round_trip_on_awkward_masks():
    rng = np.random.default_rng(0)
    for mask in (np.zeros((5, 7), bool), np.ones((3, 4), bool), rng.random((31, 17)) > 0.7):
        rle = rle_encode(mask)
        assert rle["size"] == list(mask.shape)
        assert (rle_decode(json.loads(json.dumps(rle))) == mask).all()


def test_csv_per_annotator_and_since(corrected, tmp_path):
    out = tmp_path / "csv"
    result = corrected.export(out, "csv", mode="per-annotator")
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert result.records == len(rows) == 5  # alice x3 (her latest of image 2), bob x2
    by = {(r["image"], r["annotators"]): r for r in rows}
    key = (f"images/{_name(corrected.images[0])}_annotator-{corrected.bob}.png", f"annotator-{corrected.bob}")
    assert by[key]["grade"] == "3" and by[key]["MA_known"] == "False"
    ungradable = [r for r in rows if r["ungradable"] == "True"]
    assert len(ungradable) == 1 and ungradable[0]["grade"] == ""
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    assert corrected.export(tmp_path / "none", "csv", since=tomorrow).records == 0
    with pytest.raises(ValueError, match="not empty"):
        corrected.export(out, "csv")


def _with_plugins() -> None:
    if not any(c.name == "export" for c in app.registered_commands):
        _load_plugins()


def test_export_command(corrected, db_url, tmp_path):
    _with_plugins()
    out = tmp_path / "cli"
    args = ["export", "--format", "coco", "--out", str(out), "--url", db_url]
    result = CliRunner().invoke(app, [*args, "--data-dir", str(corrected.data_dir), "--per-annotator"])
    assert result.exit_code == 0, result.output
    assert "exported 5 labels (per-annotator) as coco" in result.output
    bad = CliRunner().invoke(app, ["export", "--format", "voc", "--out", str(tmp_path / "x"), "--url", db_url])
    assert bad.exit_code == 2 and "choose one of idrid, csv, coco" in bad.output
