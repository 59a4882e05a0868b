"""Repository behaviour on both backends: users, images, predictions, append-only annotations, the review queue,
model versions, jobs and the audit log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db import repository as repo
from db.models import (
    AnnotationKind,
    AppendOnlyError,
    AuditEntry,
    Job,
    JobStatus,
    ModelStatus,
    ModelVersion,
    Role,
    utcnow,
)

H = [f"{i:02x}" * 32 for i in range(16)]  # well-formed artifact hashes
PROBS = [0.1, 0.2, 0.4, 0.2, 0.1]


def actions(session: Session) -> list[str]:
    return [e.action for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


@pytest.fixture
def users(Session: sessionmaker[Session]) -> dict[str, int]:
    with Session.begin() as session:
        ids = {
            name: repo.create_user(session, name, f"{name}-quiet-harbour-7", role).id
            for name, role in [("ana", Role.CLINICIAN), ("ben", Role.CLINICIAN), ("root", Role.ADMIN)]
        }
    return ids


def _image(session: Session, n: int, **kw) -> int:
    image, _ = repo.add_image(
        session,
        sha256=H[n],
        path=f"images/{H[n][:2]}/{H[n][2:]}.png",
        original_filename=f"img{n}.jpg",
        width=64,
        height=48,
        **kw,
    )
    return image.id


@pytest.fixture
def images(Session: sessionmaker[Session], users: dict[str, int]) -> list[int]:
    with Session.begin() as session:
        return [_image(session, n, source="clinic-a" if n < 2 else "clinic-b") for n in range(3)]


# ----------------------------------------------------------------------------------------------------------- users


def test_passwords_verify_and_fail(Session: sessionmaker[Session], users: dict[str, int]):
    with Session.begin() as session:
        assert repo.verify_password(session, "ana", "ana-quiet-harbour-7").id == users["ana"]
        assert repo.verify_password(session, "ana", "wrong-password") is None
        assert repo.verify_password(session, "nobody", "ana-quiet-harbour-7") is None
        repo.disable_user(session, "ana", actor_id=users["root"])
    with Session.begin() as session:
        assert repo.verify_password(session, "ana", "ana-quiet-harbour-7") is None
        assert repo.verify_password(session, "ben", "ben-quiet-harbour-7") is not None
        failed = repo.audit_entries(session, action="user.login_failed")
        assert [e.details["reason"] for e in failed] == ["wrong password", "unknown user", "account disabled"]
        assert all("harbour" not in str(e.details.values()) for e in failed)
        ana = repo.get_user(session, "ana")
        assert ana.active is False and ana.password_hash.startswith("$argon2id$")
        assert "ana-quiet-harbour-7" not in ana.password_hash


def test_real_hash_parameters_are_argon2id_rfc9106(monkeypatch: pytest.MonkeyPatch, Session):
    from argon2 import PasswordHasher

    monkeypatch.setattr(repo.users, "_hasher", PasswordHasher())
    with Session.begin() as session:
        user = repo.create_user(session, "carol", "a long passphrase", "admin")
        assert user.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_user_validation(Session: sessionmaker[Session], users: dict[str, int]):
    with Session.begin() as session:
        with pytest.raises(ValueError, match="already exists"):
            repo.create_user(session, "ana", "another-password", "clinician")
        with pytest.raises(ValueError, match="too short"):
            repo.create_user(session, "dan", "short", "clinician")
        with pytest.raises(ValueError, match="unknown role 'nurse'"):
            repo.create_user(session, "dan", "long enough", "nurse")
        with pytest.raises(ValueError, match="invalid"):
            repo.create_user(session, "../dan", "long enough", "clinician")
        with pytest.raises(repo.NotFoundError, match="no user called 'zed'"):
            repo.disable_user(session, "zed")


# ---------------------------------------------------------------------------------------- images and predictions


def test_images_dedupe_by_sha(Session: sessionmaker[Session], images: list[int]):
    with Session.begin() as session:
        again, created = repo.add_image(
            session, sha256=H[0], path="x", original_filename="other.jpg", width=1, height=1
        )
        assert (again.id, created) == (images[0], False)
        assert again.original_filename == "img0.jpg"
        assert repo.get_image_by_sha(session, H[1]).id == images[1]
        assert repo.get_image_by_sha(session, H[9]) is None
        assert actions(session).count("image.add") == 3


def test_latest_prediction(Session: sessionmaker[Session], images: list[int]):
    with Session.begin() as session:
        assert repo.latest_prediction(session, images[0]) is None
        repo.add_prediction(session, images[0], grade=1, probabilities=PROBS, model_name="demo")
        p2 = repo.add_prediction(
            session,
            images[0],
            grade=3,
            probabilities=PROBS,
            model_name="demo",
            lesion_summary={"MA": {"count": 3, "area": 0.01}},
            lesion_map_hashes={"MA": H[5], "HE": H[6]},
            attention_map_hash=H[7],
            latency_ms=12.5,
        )
    with Session() as session:
        latest = repo.latest_prediction(session, images[0])
        assert latest.id == p2.id and latest.grade == 3
        assert latest.lesion_map_hashes == {"MA": H[5], "HE": H[6]}
        assert latest.lesion_summary["MA"]["count"] == 3
        assert [p.grade for p in repo.predictions_for_image(session, images[0])] == [1, 3]


PREDICTION_MISTAKES = [
    ({"grade": 5}, "not an ICDR grade"),
    ({"grade": 2.5}, "not an ICDR grade"),
    ({"probabilities": [0.5, 0.5]}, "5 values"),
    ({"probabilities": [2, 0, 0, 0, 0]}, "5 values"),
    ({"model_name": None}, "which model"),
    ({"lesion_map_hashes": {"MA": "not-a-hash"}}, "MA = 'not-a-hash'"),
    ({"attention_map_hash": "abc"}, "attention_map_hash 'abc'"),
    ({"lesion_summary": {"MA": float("nan")}}, "cannot be stored as JSON"),
]


def test_prediction_validation(Session: sessionmaker[Session], images: list[int]):
    with Session.begin() as session:
        for kwargs, message in PREDICTION_MISTAKES:
            args = {"grade": 2, "probabilities": PROBS, "model_name": "demo", **kwargs}
            with pytest.raises(ValueError, match=message):
                repo.add_prediction(session, images[0], **args)
        with pytest.raises(repo.NotFoundError, match="no image with id 9999"):
            repo.add_prediction(session, 9999, grade=1, probabilities=PROBS, model_name="demo")
        assert repo.audit_entries(session, action="prediction.add") == []


def test_numpy_values_are_stored_as_plain_json(Session: sessionmaker[Session], images: list[int]):
    import numpy as np

    with Session.begin() as session:
        p = repo.add_prediction(
            session,
            images[0],
            grade=np.int64(2),
            probabilities=np.array(PROBS, dtype=np.float32),
            model_name="demo",
            lesion_summary={"MA": {"count": np.int32(4), "area": np.float32(0.5)}},
        )
    with Session() as session:
        stored = session.get(type(p), p.id)
        assert stored.lesion_summary == {"MA": {"count": 4, "area": 0.5}}
        assert stored.probabilities == pytest.approx(PROBS)


# ----------------------------------------------------------------------------------------------------- annotations


def test_annotations_are_appended_and_linked_to_the_previous(
    Session: sessionmaker[Session], users: dict[str, int], images: list[int]
):
    ana, ben = users["ana"], users["ben"]
    with Session.begin() as session:
        pred = repo.add_prediction(session, images[0], grade=2, probabilities=PROBS, model_name="demo")
        a1 = repo.add_annotation(session, images[0], ana, kind="grade-only", grade=2, based_on_prediction_id=pred.id)
        b1 = repo.add_annotation(session, images[0], ben, kind="ungradable", comment="blurred")
        o1 = repo.add_annotation(session, images[1], ana, kind="grade-only", grade=0)
    with Session.begin() as session:
        a2 = repo.add_annotation(session, images[0], ana, kind="full", grade=3, mask_hashes={"HE": H[3], "MA": H[4]})
        a3 = repo.add_annotation(
            session, images[0], ana, kind=AnnotationKind.PARTIAL, grade=3, mask_hashes={"EX": H[5]}
        )
    assert (a1.previous_id, b1.previous_id, o1.previous_id) == (None, None, None)
    assert (a2.previous_id, a3.previous_id) == (a1.id, a2.id)
    with Session() as session:
        everything = repo.annotations_for_image(session, images[0])
        assert [a.id for a in everything] == [a1.id, b1.id, a2.id, a3.id]
        current = repo.annotations_for_image(session, images[0], current_only=True)
        assert [a.id for a in current] == [b1.id, a3.id]
        assert [a.id for a in repo.annotations_for_image(session, images[0], annotator_id=ben)] == [b1.id]
        assert current[1].mask_hashes == {"EX": H[5]} and current[0].grade is None


def test_annotations_cannot_be_changed_or_deleted(Session: sessionmaker[Session], users, images):
    with Session.begin() as session:
        a = repo.add_annotation(session, images[0], users["ana"], kind="grade-only", grade=1)
    with pytest.raises(AppendOnlyError, match="append-only"), Session.begin() as session:
        session.get(type(a), a.id).grade = 4
    with pytest.raises(AppendOnlyError), Session.begin() as session:
        session.delete(session.get(type(a), a.id))
    with Session() as session:
        assert session.get(type(a), a.id).grade == 1
    # Nor does the repository offer a way to.
    verbs = ("update", "delete", "remove", "edit", "set_annotation", "change")
    assert not [n for n in dir(repo) if "annotation" in n and n.startswith(verbs)]


ANNOTATION_MISTAKES = [
    ({"kind": "ungradable", "grade": 2}, "ungradable annotation has no grade"),
    ({"kind": "grade-only"}, "needs a grade"),
    ({"kind": "full", "grade": 2}, "at least one lesion mask"),
    ({"kind": "partial", "grade": 2, "mask_hashes": {"MA": "0" * 63}}, "not an artifact sha256"),
    ({"kind": "grade-only", "grade": 2, "mask_hashes": {"MA": H[1]}}, "carries no lesion masks"),
    ({"kind": "sketch", "grade": 2}, "unknown annotation kind"),
    ({"kind": "grade-only", "grade": -1}, "not an ICDR grade"),
]


def test_annotation_validation(Session, users, images):
    with Session.begin() as session:
        for kwargs, message in ANNOTATION_MISTAKES:
            with pytest.raises(ValueError, match=message):
                repo.add_annotation(session, images[0], users["ana"], **kwargs)
        assert repo.annotations_for_image(session, images[0]) == []


def test_annotation_references_are_checked(Session, users, images):
    with Session.begin() as session:
        pred = repo.add_prediction(session, images[1], grade=2, probabilities=PROBS, model_name="demo")
        with pytest.raises(ValueError, match=f"prediction {pred.id} is of image {images[1]}"):
            repo.add_annotation(
                session, images[0], users["ana"], kind="grade-only", grade=1, based_on_prediction_id=pred.id
            )
        with pytest.raises(repo.NotFoundError, match="no image"):
            repo.add_annotation(session, 9999, users["ana"], kind="grade-only", grade=1)
        repo.disable_user(session, "ben")
        with pytest.raises(ValueError, match="'ben' is disabled"):
            repo.add_annotation(session, images[0], users["ben"], kind="grade-only", grade=1)


def test_previous_link_is_unique_in_the_database(Session, users, images):
    with Session.begin() as session:
        a1 = repo.add_annotation(session, images[0], users["ana"], kind="grade-only", grade=1)
        repo.add_annotation(session, images[0], users["ana"], kind="grade-only", grade=2)
    # A second successor of the same annotation (a forked chain) is refused by the schema itself.
    with pytest.raises(IntegrityError), Session.begin() as session:
        session.add(
            type(a1)(image_id=images[0], annotator_id=users["ana"], grade=3, kind="grade-only", previous_id=a1.id)
        )


# ---------------------------------------------------------------------------------------------------- review queue


def test_review_queue(Session, users, images):
    ana = users["ana"]
    with Session.begin() as session:
        repo.add_prediction(session, images[0], grade=1, probabilities=PROBS, model_name="demo")
        latest0 = repo.add_prediction(session, images[0], grade=4, probabilities=PROBS, model_name="demo")
        repo.add_prediction(session, images[1], grade=2, probabilities=PROBS, model_name="demo")
        repo.add_annotation(session, images[1], ana, kind="grade-only", grade=2)
        repo.add_annotation(session, images[1], users["ben"], kind="grade-only", grade=3)
    with Session() as session:
        rows = repo.review_queue(session, ana)
        assert [r.image.id for r in rows] == images[::-1]
        by_id = {r.image.id: r for r in rows}
        assert by_id[images[0]].prediction.id == latest0.id
        assert by_id[images[2]].prediction is None
        assert [by_id[i].has_my_annotation for i in images] == [False, True, False]
        assert [by_id[i].annotation_count for i in images] == [0, 2, 0]

        assert [r.image.id for r in repo.review_queue(session, ana, unannotated_by_me=True)] == [images[2], images[0]]
        assert [r.image.id for r in repo.review_queue(session, users["root"], unannotated_by_me=True)] == images[::-1]
        assert [r.image.id for r in repo.review_queue(session, ana, order="grade")] == [images[0], images[1], images[2]]
        assert [r.image.id for r in repo.review_queue(session, ana, min_grade=2, max_grade=3)] == [images[1]]
        assert [r.image.id for r in repo.review_queue(session, ana, with_prediction=False)] == [images[2]]
        assert [r.image.id for r in repo.review_queue(session, ana, source="clinic-a", order="oldest")] == images[:2]
        assert [r.image.id for r in repo.review_queue(session, ana, order="oldest", limit=1, offset=1)] == [images[1]]
        with pytest.raises(ValueError, match="unknown queue order"):
            repo.review_queue(session, ana, order="random")


# -------------------------------------------------------------------------------------------------- model versions


def _versions(session: Session, *names: str) -> list[ModelVersion]:
    return [
        repo.add_model_version(session, n, f"/ckpt/{n}", H[i + 1], metrics={"qwk": 0.8}) for i, n in enumerate(names)
    ]


def test_exactly_one_active_version_and_rollback(Session: sessionmaker[Session], users):
    root = users["root"]
    with Session.begin() as session:
        a, b, c = (v.id for v in _versions(session, "a", "b", "c"))
        assert repo.active_model_version(session) is None
    for version in (a, b, c):
        with Session.begin() as session:
            repo.promote_model_version(session, version, actor_id=root, reason="hold-out QWK not worse")
            statuses = {v.name: v.status for v in repo.list_model_versions(session)}
            assert list(statuses.values()).count(ModelStatus.ACTIVE) == 1
    with Session() as session:
        assert repo.active_model_version(session).id == c
        assert {v.name: v.status.value for v in repo.list_model_versions(session)} == {
            "a": "retired",
            "b": "retired",
            "c": "active",
        }
    with Session.begin() as session:
        assert repo.rollback_model_version(session, actor_id=root, reason="clinicians object").id == b
    with Session.begin() as session:
        assert repo.rollback_model_version(session, actor_id=root).id == a
        assert {v.name: v.status.value for v in repo.list_model_versions(session)} == {
            "a": "active",
            "b": "rejected",
            "c": "rejected",
        }
    with Session.begin() as session, pytest.raises(ValueError, match="none to roll back to"):
        repo.rollback_model_version(session)
    with Session.begin() as session:
        log = repo.audit_entries(session, object_type="model_version")
        assert [e.action for e in log] == ["model_version.add"] * 3 + ["model_version.promote"] * 3 + [
            "model_version.rollback"
        ] * 2
        assert log[4].details["previous_active_id"] == a and log[4].user_id == root
        assert log[6].details["rejected_id"] == c


def test_the_database_refuses_a_second_active_version(Session: sessionmaker[Session]):
    with Session.begin() as session:
        a, b = _versions(session, "a", "b")
        repo.promote_model_version(session, a.id)
    with pytest.raises(IntegrityError), Session.begin() as session:
        session.get(ModelVersion, b.id).status = ModelStatus.ACTIVE


def test_model_status_changes(Session: sessionmaker[Session]):
    with Session.begin() as session:
        a, b, c = (v.id for v in _versions(session, "a", "b", "c"))
        repo.set_model_version_status(session, b, "rejected", reason="QWK dropped")
        with pytest.raises(ValueError, match="'b' is rejected; it cannot be promoted"):
            repo.promote_model_version(session, b)
        assert repo.set_model_version_status(session, a, "active").status is ModelStatus.ACTIVE
        assert repo.promote_model_version(session, a).status is ModelStatus.ACTIVE  # no-op
        repo.set_model_version_status(session, a, "retired")
        assert repo.active_model_version(session) is None
        with pytest.raises(ValueError, match="unknown model status"):
            repo.set_model_version_status(session, c, "archived")
        with pytest.raises(ValueError, match="already exists"):
            repo.add_model_version(session, "c", "/x", H[1])
        with pytest.raises(repo.NotFoundError):
            repo.promote_model_version(session, 9999)
        child = repo.add_model_version(session, "d", "/ckpt/d", H[2], parent_id=a, config={"lr": 1e-4})
        assert child.parent.name == "a"
        assert actions(session)[-1] == "model_version.add"
        assert "model_version.rejected" in actions(session) and "model_version.retired" in actions(session)


# ------------------------------------------------------------------------------------------------------------ jobs


def test_job_lifecycle(Session: sessionmaker[Session]):
    with Session.begin() as session:
        j1 = repo.enqueue_job(session, "retrain", {"epochs": 2}).id
        j2 = repo.enqueue_job(session, "screen", {"folder": "/in"}).id
    with Session.begin() as session:
        job = repo.claim_job(session, "w1", kinds=["screen"])
        assert (job.id, job.status, job.attempts, job.worker_id) == (j2, JobStatus.RUNNING, 1, "w1")
    with Session.begin() as session:
        job = repo.claim_job(session, "w1")
        assert job.id == j1 and job.params == {"epochs": 2}
        assert repo.claim_job(session, "w2") is None
    with Session.begin() as session:
        job = repo.heartbeat_job(session, j1, "w1", progress=0.5, message="epoch 1/2")
        assert (job.progress, job.message) == (0.5, "epoch 1/2")
        with pytest.raises(repo.LeaseLostError, match="held by 'w1'"):
            repo.heartbeat_job(session, j1, "w2", progress=0.6)
        with pytest.raises(ValueError, match="fraction"):
            repo.heartbeat_job(session, j1, "w1", progress=1.5)
    with Session.begin() as session:
        done = repo.complete_job(session, j1, "w1", {"model_version_id": 7})
        assert (done.status, done.progress, done.result, done.lease_expires_at) == (
            JobStatus.DONE,
            1.0,
            {"model_version_id": 7},
            None,
        )
        with pytest.raises(repo.LeaseLostError, match="it is done"):
            repo.complete_job(session, j1, "w1")
    with Session() as session:
        assert [j.id for j in repo.list_jobs(session, status="done")] == [j1]
        assert [e.action for e in repo.audit_entries(session, object_type="job", object_id=j1)] == [
            "job.enqueue",
            "job.claim",
            "job.complete",
        ]


def test_failed_attempts_are_retried_until_max_attempts(Session: sessionmaker[Session]):
    with Session.begin() as session:
        jid = repo.enqueue_job(session, "retrain", max_attempts=2).id
    with Session.begin() as session:
        repo.claim_job(session, "w1")
        job = repo.fail_job(session, jid, "w1", "CUDA out of memory")
        assert (job.status, job.attempts, job.error) == (JobStatus.QUEUED, 1, "CUDA out of memory")
    with Session.begin() as session:
        assert repo.claim_job(session, "w2").attempts == 2
        job = repo.fail_job(session, jid, "w2", "again")
        assert job.status is JobStatus.FAILED
        assert repo.claim_job(session, "w3") is None
    with Session.begin() as session:
        jid2 = repo.enqueue_job(session, "retrain").id
        repo.claim_job(session, "w1")
        assert repo.fail_job(session, jid2, "w1", "bad parameters", retry=False).status is JobStatus.FAILED
        assert actions(session).count("job.retry") == 1 and actions(session).count("job.fail") == 2


def test_expired_lease_is_claimed_again_until_attempts_run_out(Session: sessionmaker[Session]):
    with Session.begin() as session:
        jid = repo.enqueue_job(session, "retrain", max_attempts=2).id
    with Session.begin() as session:
        repo.claim_job(session, "dead-worker", lease_s=60)
        assert repo.claim_job(session, "w2") is None  # lease still valid
    with Session.begin() as session:  # the worker dies: its lease runs out
        session.get(Job, jid).lease_expires_at = utcnow() - timedelta(seconds=1)
    with Session.begin() as session:
        job = repo.claim_job(session, "w2")
        assert (job.id, job.attempts, job.worker_id, job.status) == (jid, 2, "w2", JobStatus.RUNNING)
    with Session.begin() as session:
        with pytest.raises(repo.LeaseLostError, match="held by 'w2'"):
            repo.heartbeat_job(session, jid, "dead-worker")
        repo.heartbeat_job(session, jid, "w2")
        with pytest.raises(ValueError, match="positive number of seconds"):
            repo.heartbeat_job(session, jid, "w2", lease_s=0)
        session.get(Job, jid).lease_expires_at = utcnow() - timedelta(seconds=1)  # w2 dies too
    with Session.begin() as session:
        assert repo.claim_job(session, "w3") is None
    with Session() as session:
        job = repo.get_job(session, jid)
        assert job.status is JobStatus.FAILED and "lease of worker 'w2' expired" in job.error and job.attempts == 2
        reaps = repo.audit_entries(session, action="job.reap", object_id=jid)
        assert [(e.details["worker_id"], e.details["outcome"]) for e in reaps] == [
            ("dead-worker", "queued"),
            ("w2", "failed"),
        ]


# ----------------------------------------------------------------------------------------------------------- audit


def test_every_write_is_audited_in_its_own_transaction(Session: sessionmaker[Session]):
    with Session.begin() as session:
        admin = repo.create_user(session, "root", "root-quiet-harbour-7", "admin")
        doc = repo.create_user(session, "doc", "doc-quiet-harbour-7", "clinician", actor_id=admin.id)
        img = _image(session, 0, uploaded_by_id=doc.id)
        pred = repo.add_prediction(session, img, grade=2, probabilities=PROBS, model_name="demo")
        repo.add_annotation(session, img, doc.id, kind="grade-only", grade=1, based_on_prediction_id=pred.id)
        v = repo.add_model_version(session, "v1", "/c", H[1], actor_id=admin.id)
        repo.promote_model_version(session, v.id, actor_id=admin.id)
        repo.set_model_version_status(session, v.id, "retired", actor_id=admin.id)
        jid = repo.enqueue_job(session, "retrain", actor_id=admin.id).id
        repo.claim_job(session, "w")
        repo.heartbeat_job(session, jid, "w", progress=0.3)  # progress only: not audited
        repo.complete_job(session, jid, "w")
        repo.verify_password(session, "doc", "doc-quiet-harbour-7")
        repo.disable_user(session, "doc", actor_id=admin.id)
    with Session() as session:
        log = repo.audit_entries(session)
        assert [e.action for e in log] == [
            "user.create",
            "user.create",
            "image.add",
            "prediction.add",
            "annotation.add",
            "model_version.add",
            "model_version.promote",
            "model_version.retired",
            "job.enqueue",
            "job.claim",
            "job.complete",
            "user.login",
            "user.disable",
        ]
        assert all(e.created_at.tzinfo is not None for e in log)
        assert [e.user_id for e in log][:5] == [None, admin.id, doc.id, None, doc.id]
    # A write that rolls back leaves no audit entry behind.
    with pytest.raises(RuntimeError), Session.begin() as session:
        repo.enqueue_job(session, "retrain")
        raise RuntimeError("caller gives up")
    with Session() as session:
        assert len(repo.audit_entries(session)) == 13
    with pytest.raises(AppendOnlyError), Session.begin() as session:
        session.delete(repo.audit_entries(session, limit=1)[0])
