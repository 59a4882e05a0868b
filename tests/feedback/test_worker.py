"""Workers and jobs: one job runs on one worker at a time; a killed worker leaves the served model alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _support_feedback import FAST_RETRAIN, CorrectedDB, register_holdout

from db import repository
from db.models import Job, JobStatus
from feedback.jobs import maybe_queue_retraining, queue_retraining
from feedback.retrain import RetrainConfig, models_dir
from feedback.worker import Worker

HERE = Path(__file__).parent


class CountingWorker(Worker):
    """A worker whose only job kind, ``count``, records which worker ran which job."""

    ran: list[tuple[str, int]]

    def handlers(self) -> dict[str, Any]:
        return {"count": self._count}

    def _count(self, job: Job, progress: Any, finalize: Any) -> dict[str, Any]:
        time.sleep(0.05)
        self.ran.append((self.worker_id, job.id))
        with self.Session.begin() as s:
            finalize(s, {"by": self.worker_id})
        return {}


def test_two_workers_never_run_the_same_job(Session, db_url: str) -> None:  # noqa: N803
    with Session.begin() as s:
        for _ in range(8):
            repository.enqueue_job(s, "count")
    ran: list[tuple[str, int]] = []
    workers = []
    for name in ("w1", "w2"):
        w = CountingWorker(Session, None, name, lease_s=30, log=lambda m: None)
        w.ran = ran
        workers.append(w)

    def drain(w: Worker) -> None:
        while w.run_once() is not None:
            pass

    threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    job_ids = [j for _, j in ran]
    assert sorted(job_ids) == sorted(set(job_ids)) and len(job_ids) == 8
    with Session() as s:
        jobs = repository.list_jobs(s, kind="count")
        assert all(j.status is JobStatus.DONE and j.attempts == 1 for j in jobs)
        assert {j.result["by"] for j in jobs} <= {"w1", "w2"}


def test_queueing_rules(corrected_db: CorrectedDB) -> None:
    db = corrected_db
    with db.Session.begin() as s:
        try:
            queue_retraining(s, db.clinician_ids[0], {})
            raise AssertionError("a clinician queued retraining")
        except PermissionError:
            pass
        assert maybe_queue_retraining(s, threshold=100) is None
        # 6 corrections so far, all by one clinician: one account alone never retrains the model.
        assert maybe_queue_retraining(s, threshold=3) is None
        other = repository.create_user(s, "doc2", "mauve-otter-quietly-42", "clinician")
        repository.add_annotation(s, db.image_ids[0], other.id, kind="grade-only", grade=1)
        auto = maybe_queue_retraining(s, threshold=3)
        assert auto is not None and auto.params == {"trigger": "auto"}
        assert maybe_queue_retraining(s, threshold=1) is None  # one is waiting already
        assert queue_retraining(s, db.admin_id).id == auto.id  # the waiting job will see every correction
        with pytest.raises(ValueError, match=rf"job {auto.id} is already waiting with other settings \(the defaults\)"):
            queue_retraining(s, db.admin_id, {"steps": 5})  # it would run without them: refused, not dropped
        assert [j.id for j in repository.list_jobs(s, kind="retrain")] == [auto.id]
        try:
            queue_retraining(s, db.admin_id, {"stepz": 5})
            raise AssertionError("unknown parameter accepted")
        except ValueError as exc:
            assert "stepz" in str(exc)


@pytest.mark.slow
def test_killed_worker_leaves_active_model_and_job_is_taken_over(
    sqlite_corrected_db: CorrectedDB, holdout_cohort: Path
) -> None:
    # SQLite only: the lease logic is the repository's, tested on both backends in tests/db; this is about the worker.
    db = sqlite_corrected_db
    register_holdout(db.Session, holdout_cohort, db.data_dir)
    with db.Session.begin() as s:
        job_id = queue_retraining(s, db.admin_id, {**FAST_RETRAIN, "steps": 100000}).id
    settings = {"min_holdout_images": 5}
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    child = subprocess.Popen(
        [sys.executable, str(HERE / "_support_worker_child.py"), db.url, str(db.data_dir), json.dumps(settings)],
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with db.Session() as s:
                job = repository.get_job(s, job_id)
                if job.message and job.message.startswith("fine-tuning"):
                    break
            assert child.poll() is None, "the worker exited before it was killed"
            time.sleep(0.3)
        else:
            raise AssertionError("the worker never started fine-tuning")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(30)

    with db.Session() as s:
        assert repository.active_model_version(s).id == db.version_id
        assert [v.id for v in repository.list_model_versions(s)] == [db.version_id]
        job = repository.get_job(s, job_id)
        assert job.status is JobStatus.RUNNING and job.worker_id == "doomed"
    assert not [p for p in models_dir(db.data_dir).glob("*") if not p.name.startswith(".")]

    # Before the lease passes nobody may take the job; afterwards another worker does, and finishes it.
    rescuer = Worker(
        db.Session, db.data_dir, "rescuer", lease_s=30, retrain=RetrainConfig(**settings), log=lambda m: None
    )
    with db.Session.begin() as s:
        s.execute(Job.__table__.update().where(Job.id == job_id).values(params=FAST_RETRAIN))
    time.sleep(2.5)
    done = rescuer.run_once()
    assert done is not None and done.id == job_id
    assert done.status is JobStatus.DONE and done.attempts == 2 and done.worker_id == "rescuer"
    with db.Session() as s:
        waiting = repository.get_model_version_by_name(s, done.result["version"])
        assert waiting.status.value == "awaiting-approval" and repository.active_model_version(s).id == db.version_id
