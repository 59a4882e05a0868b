"""The whole loop on SQLite and PostgreSQL: corrections in the database -> job -> a version awaiting approval ->
an admin approves it -> predictions."""

from __future__ import annotations

from pathlib import Path

import pytest
from _support_feedback import FAST_RETRAIN, CorrectedDB, register_holdout

from db import repository
from db.models import JobStatus, ModelStatus
from drgnet.data.readers import open_dataset
from feedback.jobs import queue_retraining
from feedback.retrain import RetrainConfig
from feedback.serving import ActiveModel
from feedback.worker import Worker


@pytest.mark.slow
def test_corrections_to_approved_version_to_predictions(
    corrected_db: CorrectedDB, cohort: Path, holdout_cohort: Path
) -> None:
    db = corrected_db
    register_holdout(db.Session, holdout_cohort, db.data_dir)
    serving = ActiveModel(db.data_dir)
    with db.Session() as s:
        first = serving.get_predictor(s)
    assert first is not None and first.model_version == "v1"

    with db.Session.begin() as s:
        job = queue_retraining(s, db.admin_id, FAST_RETRAIN)
        job_id = job.id
    worker = Worker(
        db.Session, db.data_dir, "w1", lease_s=30, retrain=RetrainConfig(min_holdout_images=5), log=lambda m: None
    )
    done = worker.run_once()
    assert done is not None and done.id == job_id
    assert done.status is JobStatus.DONE, done.error
    assert done.result["status"] == "awaiting-approval", done.result["reasons"]
    with db.Session() as s:  # nobody approved it yet: the app still serves v1
        assert serving.get_predictor(s).model_version == "v1"
    with db.Session.begin() as s:
        repository.approve_model_version(s, done.result["version_id"], actor_id=db.admin_id, reason="gate ok, checked")

    with db.Session() as s:
        active = repository.active_model_version(s)
        assert active.name == done.result["version"] and active.parent_id == db.version_id
        assert (db.data_dir / active.checkpoint_path / "model.safetensors").is_file()
        assert repository.get_model_version(s, db.version_id).status is ModelStatus.RETIRED
        predictor = serving.get_predictor(s)
        again = serving.get_predictor(s)
    assert predictor is again and serving.loads == 2
    assert predictor.model_version == active.name
    image = open_dataset(cohort, layout="synthetic")[0].image
    prediction = predictor.predict(image)
    assert 0 <= prediction.grade <= 4
