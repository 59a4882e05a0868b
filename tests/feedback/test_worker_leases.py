"""Jobs (issue 16, item 7): a lease is renewed only while the job makes progress, an attempt has a time limit, and
every worker's poll reaps expired jobs, so a dead or hung worker's job never stays "running". SQLite and
PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from db import repository
from db.models import Job, JobStatus, utcnow
from feedback.worker import Worker

LEASE_S = 0.6


class ScriptedWorker(Worker):
    """Runs ``script`` jobs: ``{"seconds": s, "progress_every": p}`` (p = 0: never reports progress)."""

    def handlers(self) -> dict[str, Any]:
        return {"script": self._script}

    def _script(self, job: Job, progress: Any, finalize: Any) -> dict[str, Any]:
        end = time.monotonic() + float(job.params["seconds"])
        every = float(job.params.get("progress_every", 0))
        while time.monotonic() < end:
            time.sleep(every or 0.05)
            if every:
                progress(0.5, "working")
        with self.Session.begin() as s:
            finalize(s, {"by": self.worker_id})
        return {"by": self.worker_id}


def _worker(Session, name: str, **kw: Any) -> ScriptedWorker:  # noqa: N803
    return ScriptedWorker(Session, None, name, lease_s=LEASE_S, log=lambda m: None, **kw)


def _run_in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    return thread


def _wait_running(Session, job_id: int) -> None:  # noqa: N803
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with Session() as s:
            if repository.get_job(s, job_id).status is JobStatus.RUNNING:
                return
        time.sleep(0.05)
    raise AssertionError("the job never started")


def test_a_hung_job_loses_its_lease_and_another_worker_takes_it(Session) -> None:  # noqa: N803
    with Session.begin() as s:
        job_id = repository.enqueue_job(s, "script", {"seconds": 2.5, "progress_every": 0}).id
    hung = _run_in_thread(_worker(Session, "hung"))
    _wait_running(Session, job_id)
    time.sleep(LEASE_S * 2)  # the heartbeat thread is alive, but nothing progressed: no renewal
    with Session.begin() as s:  # the job now only needs quick work
        s.get(Job, job_id).params = {"seconds": 0.1, "progress_every": 0.02}
    done = _worker(Session, "rescuer").run_once()
    hung.join(30)
    assert done is not None and done.id == job_id
    assert (done.status, done.worker_id, done.attempts) == (JobStatus.DONE, "rescuer", 2)
    with Session() as s:
        (reap,) = repository.audit_entries(s, action="job.reap", object_id=job_id)
        assert reap.details["worker_id"] == "hung" and reap.details["outcome"] == "queued"
        assert reap.details["operator"] == "worker:rescuer"


def test_a_job_that_makes_progress_keeps_its_lease(Session) -> None:  # noqa: N803
    with Session.begin() as s:
        job_id = repository.enqueue_job(s, "script", {"seconds": LEASE_S * 4, "progress_every": 0.05}).id
    busy = _run_in_thread(_worker(Session, "busy"))
    _wait_running(Session, job_id)
    for _ in range(3):
        time.sleep(LEASE_S)
        assert _worker(Session, "other").run_once() is None  # nothing to reap, nothing to claim
    busy.join(30)
    with Session() as s:
        job = repository.get_job(s, job_id)
        assert (job.status, job.worker_id, job.attempts) == (JobStatus.DONE, "busy", 1)
        assert repository.audit_entries(s, action="job.reap") == []


def test_an_attempt_past_its_time_limit_fails_without_retry(Session) -> None:  # noqa: N803
    with Session.begin() as s:
        job_id = repository.enqueue_job(s, "script", {"seconds": 30, "progress_every": 0.05}, time_limit_s=1.0).id
    started = time.monotonic()
    job = _worker(Session, "w").run_once()
    assert time.monotonic() - started < 10
    assert job.id == job_id and job.status is JobStatus.FAILED and job.attempts == 1
    assert "time limit of 1 s" in job.error
    # The worker's default applies to jobs queued without one, and is recorded on the job.
    with Session.begin() as s:
        other = repository.enqueue_job(s, "script", {"seconds": 30, "progress_every": 0.05}).id
    job = _worker(Session, "w", time_limit_s=0.8).run_once()
    assert job.id == other and job.status is JobStatus.FAILED and job.time_limit_s == 0.8


def test_every_poll_reaps_dead_workers_jobs_of_any_kind(Session) -> None:  # noqa: N803
    with Session.begin() as s:
        retry = repository.enqueue_job(s, "retrain", max_attempts=2).id
        last = repository.enqueue_job(s, "retrain", max_attempts=1).id
        for _ in range(2):
            repository.claim_job(s, "dead", kinds=["retrain"], lease_s=60)
    with Session.begin() as s:  # the worker died: its leases run out
        for job_id in (retry, last):
            s.get(Job, job_id).lease_expires_at = utcnow() - timedelta(seconds=1)
    # A worker that runs only other kinds finds nothing to do, and still reaps.
    assert _worker(Session, "poller").run_once() is None
    with Session() as s:
        assert repository.get_job(s, retry).status is JobStatus.QUEUED
        failed = repository.get_job(s, last)
        assert failed.status is JobStatus.FAILED and "no attempts left" in failed.error
        assert all(j.status is not JobStatus.RUNNING for j in repository.list_jobs(s))


def test_the_worker_and_the_repository_lease_a_job_for_as_long():
    """Two copies of one number (db imports nothing of feedback, the CLI imports no SQLAlchemy): kept equal here."""
    from db.repository.jobs import DEFAULT_LEASE_S as REPOSITORY_LEASE_S
    from feedback.worker_limits import DEFAULT_LEASE_S

    assert DEFAULT_LEASE_S == REPOSITORY_LEASE_S
