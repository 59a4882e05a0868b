"""Look-ups the feedback layer, the worker and screening use instead of queries of their own (both backends)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db import repository as repo
from db.models import AnnotationKind, JobStatus, Role

H = [f"{i:02x}" * 32 for i in range(8)]
PROBS = [0.1, 0.2, 0.4, 0.2, 0.1]


@pytest.fixture
def world(Session: sessionmaker[Session]) -> dict[str, int]:
    with Session.begin() as session:
        ids = {name: repo.create_user(session, name, f"{name}-quiet-harbour-7", Role.CLINICIAN).id for name in "ab"}
        for n in range(3):
            image, _ = repo.add_image(
                session, sha256=H[n], path=f"images/{n}.png", original_filename=f"{n}.jpg", width=64, height=48
            )
            ids[f"image{n}"] = image.id
    return ids


def test_current_annotations_follow_each_annotators_chain_and_can_leave_imports_out(Session, world):
    with Session.begin() as session:
        first = repo.add_annotation(session, world["image0"], world["a"], kind="grade-only", grade=1)
        latest = repo.add_annotation(session, world["image0"], world["a"], kind="grade-only", grade=2)
        other = repo.add_annotation(session, world["image1"], world["b"], kind=AnnotationKind.UNGRADABLE)
        imported = repo.add_annotation(session, world["image2"], world["b"], kind="grade-only", grade=0, imported=True)
    with Session() as session:
        every = [a.id for a in repo.current_annotations(session)]
        assert every == [latest.id, other.id, imported.id] and first.id not in every
        assert [a.id for a in repo.current_annotations(session, include_imported=False)] == [latest.id, other.id]
        assert [a.id for a in repo.current_annotations(session, [world["image1"]])] == [other.id]
        # Corrections count every saved annotation (replaced ones too) but never imported reference labels.
        assert repo.corrections_since(session, None) == (3, 2)
        assert repo.corrections_since(session, latest.created_at) == (1, 1)


def test_job_lookups_by_kind_and_status(Session, world):
    with Session.begin() as session:
        assert repo.oldest_job(session, "retrain", [JobStatus.QUEUED]) is None
        assert repo.last_job_queued_at(session, "retrain") is None
        first = repo.enqueue_job(session, "retrain")
        second = repo.enqueue_job(session, "retrain")
        repo.enqueue_job(session, "other")
    with Session.begin() as session:
        assert repo.oldest_job(session, "retrain", ["queued"]).id == first.id
        claimed = repo.claim_job(session, "w1", kinds=["retrain"])
        assert claimed.id == first.id
    with Session() as session:
        assert repo.oldest_job(session, "retrain", [JobStatus.QUEUED]).id == second.id
        assert repo.oldest_job(session, "retrain", [JobStatus.RUNNING]).id == first.id
        assert repo.last_job_queued_at(session, "retrain") == repo.get_job(session, second.id).created_at


def test_prediction_and_model_version_lookups(Session, world):
    with Session.begin() as session:
        version = repo.add_model_version(session, "v1", "models/v1", H[7])
        by_version = repo.add_prediction(
            session, world["image0"], grade=2, probabilities=PROBS, model_version_id=version.id
        )
        by_name = repo.add_prediction(session, world["image0"], grade=1, probabilities=PROBS, model_name="folder")
    with Session() as session:
        assert repo.model_version_by_checkpoint(session, H[7]).id == version.id
        assert repo.model_version_by_checkpoint(session, H[6]) is None
        image = world["image0"]
        assert repo.prediction_of_model(session, image, model_version_id=version.id).id == by_version.id
        assert repo.prediction_of_model(session, image, model_version_id=None, model_name="folder").id == by_name.id
        assert repo.prediction_of_model(session, image, model_version_id=None, model_name="other") is None
        assert repo.prediction_of_model(session, world["image1"], model_version_id=version.id) is None
        assert repo.get_prediction(session, by_name.id).model_name == "folder"
        assert (repo.count_images(session), repo.count_predictions(session)) == (3, 2)
