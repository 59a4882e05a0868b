"""drgnet screen --db: screened photographs and their predictions land in the database, in the review worklist,
on SQLite and on PostgreSQL; reruns add nothing twice; photographs the database refuses are reported."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select
from typer.testing import CliRunner

from db import migrate, repository
from db.engine import make_engine, make_sessionmaker
from db.ingest import read_image_bytes
from db.models import Image, Prediction
from drgnet.cli import app
from drgnet.labels import LESIONS
from drgnet.screening import collect_inputs, read_results, screen
from feedback.predictions import load_maps
from feedback.retrain import register_checkpoint

runner = CliRunner()


def _migrated(url: str):
    """A migrated database with a clinician; yields its session factory."""
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:
        repository.create_user(s, "doc", "mauve-otter-quietly-42", "clinician")
    yield sessions
    engine.dispose()


@pytest.fixture
def migrated(db_url: str, cheap_password_hashing: None):
    """On SQLite and on PostgreSQL."""
    yield from _migrated(db_url)


@pytest.fixture
def migrated_sqlite(sqlite_url: str, cheap_password_hashing: None):
    """For what does not depend on the backend."""
    yield from _migrated(sqlite_url)


def _screen_cli(*args: str):
    return runner.invoke(app, ["screen", *args, "--workers", "0", "--no-progress"])


def test_screened_photographs_enter_the_worklist_once(migrated, db_url, data_dir, tiny_checkpoint, photos, tmp_path):
    with migrated.begin() as s:
        version_id = register_checkpoint(s, tiny_checkpoint, "v1", data_dir=data_dir, activate=True).id
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "results.csv"
    db_args = ("--db", "--url", db_url, "--data-dir", str(data_dir), "--source", "clinic-7")

    # No --checkpoint: the active version screens.
    result = _screen_cli(str(photos), str(bad), "--out", str(out), *db_args)
    assert result.exit_code == 0, result.output
    assert "active model version" in result.output
    assert "6 predictions stored for review" in result.output
    rows = {r["path"]: r for r in read_results(out)}
    # Stored in a background thread, written in input order once stored.
    assert [r["path"] for r in read_results(out)] == collect_inputs([photos, bad])
    assert rows[str(bad)]["status"] == "error"
    ok = {r["sha256"]: r for r in rows.values() if r["status"] == "ok"}
    assert len(ok) == 6

    with migrated() as s:
        doc = repository.get_user(s, "doc")
        queue = repository.review_queue(s, doc.id, with_prediction=True, unannotated_by_me=True, source="clinic-7")
        assert len(queue) == 6
        assert s.scalar(select(func.count()).select_from(Image)) == 6  # the broken file was not stored
        by_name = {Path(r["path"]).name: r for r in ok.values()}
        for entry in queue:
            image, prediction = entry.image, entry.prediction
            row = by_name[image.original_filename]
            assert prediction.model_version_id == version_id
            assert prediction.grade == row["grade"]
            assert prediction.probabilities == pytest.approx([row[f"p_grade_{g}"] for g in range(5)], abs=1e-5)
            assert prediction.lesion_summary["SE"]["count"] == row["SE_count"]
            assert prediction.lesion_summary["_gradable"] == row["gradable"]
            # The maps are at the stored photograph's resolution and show what the model found (SE fires).
            lesion, attention = load_maps(prediction, data_dir)
            stored = np.asarray(PILImage.open(io.BytesIO(read_image_bytes(image, data_dir))))
            assert lesion.shape == (len(LESIONS), *stored.shape[:2])
            assert attention.shape == stored.shape[:2]
            se = lesion[LESIONS.index("SE")]
            assert se.max() > 0.9 and lesion[LESIONS.index("MA")].max() < 0.1
            assert se[0, 0] == 0.0  # outside the field of view

    # Rerun on the same output: nothing screened or stored again.
    again = _screen_cli(str(photos), str(bad), "--out", str(out), *db_args)
    assert again.exit_code == 0, again.output
    assert "0 predictions stored" in again.output
    # A fresh output file screens everything again, but the database keeps one prediction per model and image.
    fresh = _screen_cli(str(photos), "--out", str(tmp_path / "fresh.jsonl"), *db_args)
    assert fresh.exit_code == 0, fresh.output
    assert "6 photographs already had this model's prediction" in fresh.output
    with migrated() as s:
        assert s.scalar(select(func.count()).select_from(Prediction)) == 6
        assert s.scalar(select(func.count()).select_from(Image)) == 6


def test_unregistered_checkpoint_and_refused_format(
    migrated_sqlite, sqlite_url, data_dir, tiny_checkpoint, photos, tmp_path
):
    from drgnet.engines import TorchEngine
    from feedback.screening_sink import DatabaseSink

    ppm = tmp_path / "eye.ppm"  # the screening reads PPM; the database accepts JPEG, PNG, TIFF, BMP, WebP only
    first = sorted(photos.rglob("*.jpg"))[0]
    PILImage.open(first).save(ppm)
    sink = DatabaseSink(sqlite_url, data_dir, source=None, checkpoint=tiny_checkpoint)
    try:
        summary = screen(
            [str(first), str(ppm)],
            tmp_path / "r.csv",
            TorchEngine.from_checkpoint(tiny_checkpoint),
            workers=0,
            progress=False,
            sink=sink,
        )
    finally:
        sink.close()
    assert (summary.scored, summary.errors) == (1, 1)
    rows = {Path(r["path"]).name: r for r in read_results(tmp_path / "r.csv")}
    assert rows["eye.ppm"]["status"] == "error"
    assert "not stored" in rows["eye.ppm"]["error"] and "PPM images are not accepted" in rows["eye.ppm"]["error"]
    with migrated_sqlite() as s:
        predictions = list(s.scalars(select(Prediction)))
        assert len(predictions) == 1
        # Not a registered version: recorded under the checkpoint's own name.
        assert predictions[0].model_version_id is None
        assert predictions[0].model_name == rows[first.name]["model_version"]


def test_db_errors_are_clear(sqlite_url, data_dir, photos, tmp_path):
    db_url = sqlite_url
    out = tmp_path / "r.csv"
    result = _screen_cli(str(photos), "--out", str(out), "--db", "--database-url", db_url)
    assert result.exit_code == 2
    assert "drgnet db upgrade" in result.output  # not migrated
    migrate.upgrade(db_url)
    result = _screen_cli(str(photos), "--out", str(out), "--db", "--database-url", db_url)
    assert result.exit_code == 2
    assert "no model version is active" in result.output
    result = _screen_cli(str(photos), "--out", str(out), "--data-dir", str(data_dir), "--checkpoint", "x")
    assert result.exit_code == 2 and "only apply with --db" in result.output
    assert not out.exists()


def test_a_database_that_goes_away_stops_the_run_and_a_rerun_resumes(
    migrated_sqlite, sqlite_url, data_dir, tiny_checkpoint, photos, tmp_path
):
    from drgnet.engines import TorchEngine
    from drgnet.screening import SinkError
    from feedback.screening_sink import DatabaseSink

    engine = TorchEngine.from_checkpoint(tiny_checkpoint)
    out = tmp_path / "r.csv"
    sink = DatabaseSink(sqlite_url, data_dir, checkpoint=tiny_checkpoint)
    # The server stops answering after the run started: connections are refused.
    sink.sessions.configure(bind=make_engine("postgresql+psycopg://postgres@127.0.0.1:1/gone"))
    with pytest.raises(SinkError, match="the database failed"):
        screen([str(photos)], out, engine, workers=0, progress=False, sink=sink)
    sink.close()
    assert [r for r in read_results(out) if r["status"] == "ok"] == []  # no row for anything not stored

    sink = DatabaseSink(sqlite_url, data_dir, checkpoint=tiny_checkpoint)
    summary = screen([str(photos)], out, engine, workers=0, progress=False, sink=sink)
    sink.close()
    assert (summary.scored, summary.skipped, sink.stored) == (6, 0, 6)
    with migrated_sqlite() as s:
        assert s.scalar(select(func.count()).select_from(Prediction)) == 6


def test_cli_says_how_to_resume_when_the_database_fails(
    migrated_sqlite, sqlite_url, data_dir, tiny_checkpoint, photos, tmp_path, monkeypatch
):
    from sqlalchemy.exc import OperationalError

    import feedback.screening_sink

    def broken(*args, **kwargs):
        raise OperationalError("INSERT INTO images ...", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(feedback.screening_sink, "ingest_image", broken)
    out = tmp_path / "r.csv"
    args = ("--checkpoint", str(tiny_checkpoint), "--db", "--url", sqlite_url, "--data-dir", str(data_dir))
    result = _screen_cli(str(photos), "--out", str(out), *args)
    assert result.exit_code == 2
    assert "the database failed (server closed the connection unexpectedly)" in result.output
    assert "run the same command again to resume" in result.output


def test_data_dir_alone_names_the_database(tiny_checkpoint, photos, tmp_path, monkeypatch):
    monkeypatch.delenv("DRGNET_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRGNET_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    clinic = tmp_path / "clinic"
    migrate.upgrade(f"sqlite:///{clinic / 'drgnet.db'}")
    out = tmp_path / "r.csv"
    result = _screen_cli(
        str(photos), "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--db", "--data-dir", str(clinic)
    )
    assert result.exit_code == 0, result.output
    # Unregistered checkpoint: shadow predictions, nothing for the worklist.
    assert "clinic/drgnet.db: 0 predictions stored for review, 6 shadow predictions" in result.output
    assert not (tmp_path / "data").exists()


def test_a_checkpoint_that_is_not_the_active_version_stores_shadow_predictions(
    migrated, db_url, data_dir, tiny_checkpoint, photos, tmp_path
):
    """Issue 16, item 2: `screen --db --checkpoint X` with X not active changed what clinicians saw and sorted by."""
    import torch

    from drgnet.model import DRGNet
    from drgnet.model.checkpoint import load_checkpoint, save_checkpoint

    model, _ = load_checkpoint(tiny_checkpoint)
    with torch.no_grad():  # another model: it calls every photograph grade 4
        model.grade_head[-1].bias.add_(torch.tensor([0.0, 0.0, 0.0, 0.0, 50.0]))
    assert isinstance(model, DRGNet)
    other = save_checkpoint(tmp_path / "other", model, model.config)
    with migrated.begin() as s:
        active = register_checkpoint(s, tiny_checkpoint, "v1", data_dir=data_dir, activate=True).id
        candidate = register_checkpoint(s, other, "v2-candidate", data_dir=data_dir).id
    db_args = ("--db", "--url", db_url, "--data-dir", str(data_dir))

    result = _screen_cli(str(photos), "--out", str(tmp_path / "shadow.csv"), "--checkpoint", str(other), *db_args)
    assert result.exit_code == 0, result.output
    assert "0 predictions stored for review, 6 shadow predictions" in result.output
    with migrated() as s:
        doc = repository.get_user(s, "doc")
        assert repository.review_queue(s, doc.id, with_prediction=True) == []  # nothing shows ...
        rows = repository.review_queue(s, doc.id, order="grade")
        assert len(rows) == 6 and all(r.prediction is None for r in rows)  # ... or sorts by the shadow grade 4
        shadows = list(s.scalars(select(Prediction)))
        assert len(shadows) == 6 and all(p.shadow and p.model_version_id == candidate for p in shadows)
        assert all(p.grade == 4 for p in shadows)
        assert repository.latest_prediction(s, shadows[0].image_id) is None

    result = _screen_cli(str(photos), "--out", str(tmp_path / "active.csv"), *db_args)
    assert result.exit_code == 0 and "6 predictions stored for review" in result.output, result.output
    with migrated.begin() as s:
        doc = repository.get_user(s, "doc")
        rows = repository.review_queue(s, doc.id, with_prediction=True, order="grade")
        assert len(rows) == 6
        assert all(r.prediction.model_version_id == active and not r.prediction.shadow for r in rows)
        image_id = rows[0].image.id
        assert repository.latest_prediction(s, image_id).model_version_id == active
        assert len(repository.predictions_for_image(s, image_id)) == 2  # the shadow one is kept for comparison
        repository.add_annotation(s, image_id, doc.id, kind="grade-only", grade=0)
    with migrated() as s:
        compared = repository.expert_model_grades(s)
        assert sorted((m, shadow, expert) for m, shadow, expert, _ in compared) == [
            ("v1", False, 0),
            ("v2-candidate", True, 0),
        ]
        assert dict((m, g) for m, _, _, g in compared)["v2-candidate"] == 4
