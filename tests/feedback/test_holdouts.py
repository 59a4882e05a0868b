"""Frozen hold-outs in the database (issue 16, item 1): what registration refuses, that a registered set cannot be
changed unnoticed, and that its photographs never reach the worklist or the training data. SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from _support_feedback import CorrectedDB, png_bytes, register_holdout
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from db import repository
from db.artifacts import collect_garbage, image_store
from db.ingest import ingest_image
from db.models import AppendOnlyError, HoldoutImage
from drgnet.data import synthetic
from drgnet.data.readers import open_dataset
from feedback import holdouts


def _cohort(tmp_path: Path, grades: list[int], name: str, style: str = "default") -> Path:
    out = tmp_path / name
    synthetic.generate_cohort(
        out, n=len(grades), size=64, style=style, seed=3, grades=grades, workers=1, progress=False
    )
    return out


def test_registration_refuses_sets_the_gate_cannot_rely_on(Session, data_dir: Path, tmp_path: Path) -> None:  # noqa: N803
    no_grade_3 = _cohort(tmp_path, [0, 1, 2, 4, 0], "no3")
    with Session.begin() as s, pytest.raises(ValueError, match="no photograph of grade 3"):
        holdouts.register_folder(s, "h", no_grade_3, layout="synthetic", data_dir=data_dir)
    no_healthy = _cohort(tmp_path, [1, 2, 3, 4, 1], "sick")
    with Session.begin() as s, pytest.raises(ValueError, match="no photograph of grade 0"):
        holdouts.register_folder(s, "h", no_healthy, layout="synthetic", data_dir=data_dir)
    with Session.begin() as s, pytest.raises(ValueError, match="at least 3 healthy"):
        every = _cohort(tmp_path, [0, 1, 2, 3, 4], "every")
        holdouts.register_folder(s, "h", every, layout="synthetic", data_dir=data_dir, min_healthy=3)
    with Session.begin() as s, pytest.raises(ValueError, match="only grade 0"):
        holdouts.register_folder(s, "r", no_healthy, layout="synthetic", purpose="healthy-replay", data_dir=data_dir)
    with Session() as s:
        assert repository.list_holdouts(s) == []


def test_a_registered_holdout_is_frozen_and_kept_apart(corrected_db: CorrectedDB, holdout_cohort: Path) -> None:
    db = corrected_db
    register_holdout(db.Session, holdout_cohort, db.data_dir, name="h1")
    with db.Session() as s:
        (h,) = repository.list_holdouts(s)
        assert h.n_images == 10 and h.grade_counts == {"0": 4, "1": 1, "2": 2, "3": 1, "4": 2}
        members = repository.holdout_members(s, h)
        # Not in the images table: never in the worklist, never corrected there.
        listed = {row.image.sha256 for row in repository.review_queue(s, db.admin_id, limit=1000)}
        assert listed.isdisjoint(m.image_sha256 for m in members)
        assert all(image_store(db.data_dir).exists(m.image_sha256) for m in members)
        # db gc keeps what a hold-out refers to.
        report = collect_garbage(s, db.data_dir, min_age_s=0)
        assert report["images"].removed == [] and report["artifacts"].removed == []
    # The same photograph cannot join a second set (one photograph, one role).
    with db.Session.begin() as s, pytest.raises(ValueError, match="already in a registered"):
        holdouts.register_folder(
            s, "r1", holdout_cohort, layout="synthetic", purpose="healthy-replay", data_dir=db.data_dir
        )
    # The ORM refuses a change; a change behind its back is caught by the digest before the set is used.
    with pytest.raises(AppendOnlyError), db.Session.begin() as s:
        s.scalars(select(HoldoutImage).limit(1)).one().grade = 4
    # The database refuses plain SQL too (triggers) ...
    with pytest.raises(IntegrityError, match="append-only"), db.Session.begin() as s:
        s.execute(text("UPDATE holdout_images SET grade = 4 WHERE grade = 0"))
    with pytest.raises(IntegrityError, match="append-only"), db.Session.begin() as s:
        s.execute(text("DELETE FROM holdouts"))
    # ... and should someone drop a trigger, the digest still catches the change before the set is used.
    with db.Session.begin() as s:
        sqlite = s.get_bind().dialect.name == "sqlite"
        s.execute(
            text(
                "DROP TRIGGER trg_holdout_images_no_update"
                if sqlite
                else "DROP TRIGGER trg_holdout_images_append_only ON holdout_images"
            )
        )
        s.execute(text("UPDATE holdout_images SET grade = 4 WHERE grade = 0"))
    with db.Session() as s, pytest.raises(ValueError, match="changed after registration"):
        holdouts.load_set(s, repository.get_holdout(s, "h1"), db.data_dir)


def test_a_corrected_holdout_photograph_is_never_trained_on(
    sqlite_corrected_db: CorrectedDB, holdout_cohort: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feedback import retrain

    db = sqlite_corrected_db
    register_holdout(db.Session, holdout_cohort, db.data_dir)
    sample = open_dataset(holdout_cohort, layout="synthetic")[0]
    with db.Session.begin() as s:  # someone uploads a hold-out photograph to the app and corrects it
        image = ingest_image(s, png_bytes(sample.image), "leak.png", data_dir=db.data_dir).image
        repository.add_annotation(s, image.id, db.clinician_ids[0], kind="grade-only", grade=4)
        leaked = image.sha256
    trained: list[str] = []

    def spy(model, corrections, replay, cfg, progress=None, healthy=None):
        trained.extend(item.sha256 for item in corrections.items)
        return model

    monkeypatch.setattr(retrain.run, "finetune", spy)
    params = {"steps": 0, "holdout_fraction": 0.0, "replay_per_batch": 0, "min_holdout_images": 5}
    retrain.run_retraining(db.Session, params, data_dir=db.data_dir)
    assert len(trained) == len(db.image_ids) and leaked not in trained
