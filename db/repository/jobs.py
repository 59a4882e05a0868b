"""Background jobs: queueing, claiming with a lease (row locks), heartbeats, completion, failure, reaping."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import Session

from db.models import Job, JobStatus, utcnow
from db.repository._common import NotFoundError, _json_document, _serialise_writes
from db.repository.audit import _add_audited, _audit

# The worker's default too (feedback/worker_limits.py); db imports nothing of feedback, so a test ties the two.
DEFAULT_LEASE_S = 120.0
DEFAULT_MAX_ATTEMPTS = 3


class LeaseLostError(RuntimeError):
    """A worker reported on a job it no longer holds (its lease expired and another worker took it, or it ended)."""


def enqueue_job(
    session: Session,
    kind: str,
    params: Mapping[str, Any] | None = None,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    time_limit_s: float | None = None,
    actor_id: int | None = None,
) -> Job:
    """Queue a job of ``kind`` (e.g. ``retrain``) with JSON parameters; it runs at most ``max_attempts`` times.

    ``time_limit_s``: how long one attempt may run (None: the claiming worker's default).
    """
    if not kind:
        raise ValueError("a job needs a kind")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    if time_limit_s is not None:
        _check_lease(time_limit_s)
    job = Job(
        kind=kind,
        params=_json_document(dict(params or {}), "job params"),
        status=JobStatus.QUEUED,
        progress=0.0,
        attempts=0,
        max_attempts=max_attempts,
        time_limit_s=time_limit_s,
    )
    details = {"kind": kind, "max_attempts": max_attempts, "time_limit_s": time_limit_s}
    return _add_audited(session, job, "job.enqueue", actor_id, details)


def get_job(session: Session, job_id: int) -> Job | None:
    """The job with id ``job_id`` (freshly read), or None."""
    return session.get(Job, job_id, populate_existing=True)


def list_jobs(
    session: Session, *, status: JobStatus | str | None = None, kind: str | None = None, limit: int = 100
) -> list[Job]:
    """Jobs, newest first, optionally of one status and kind."""
    query = select(Job)
    if status is not None:
        query = query.where(Job.status == JobStatus(status))
    if kind is not None:
        query = query.where(Job.kind == kind)
    return list(session.scalars(query.order_by(Job.id.desc()).limit(limit)))


def oldest_job(session: Session, kind: str, statuses: Sequence[JobStatus | str]) -> Job | None:
    """The oldest job of ``kind`` in one of ``statuses`` (e.g. the retraining job still waiting), or None."""
    wanted = [JobStatus(s) for s in statuses]
    return session.scalars(
        select(Job).where(Job.kind == kind, Job.status.in_(wanted)).order_by(Job.id).limit(1)
    ).first()


def last_job_queued_at(session: Session, kind: str) -> datetime | None:
    """When the most recent job of ``kind`` was queued, or None if there never was one."""
    return session.scalars(select(func.max(Job.created_at)).where(Job.kind == kind)).one()


def _check_lease(lease_s: float) -> None:
    if not (math.isfinite(lease_s) and lease_s > 0):
        raise ValueError(f"a lease must last a positive number of seconds, got {lease_s}")


def _fresh_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise NotFoundError(f"no job with id {job_id}")
    return job


class JobTimeLimitError(RuntimeError):
    """A job ran past its time limit: its lease is not renewed any more and the attempt must stop."""


def reap_expired_jobs(session: Session, *, kinds: Sequence[str] | None = None) -> list[Job]:
    """Running jobs whose lease has passed (their worker died or stopped making progress): queue them again while
    attempts remain, else mark them failed. Every worker calls this on every poll (:func:`claim_job` does), so a
    dead worker's job never shows "running" for longer than its lease and one poll interval.

    Returns:
        The jobs reaped (freshly read), each audited as ``job.reap``.
    """
    _serialise_writes(session)
    now = utcnow()
    query = select(Job.id, Job.worker_id, Job.attempts, Job.max_attempts).where(
        Job.status == JobStatus.RUNNING, Job.lease_expires_at < now
    )
    if kinds:
        query = query.where(Job.kind.in_(kinds))
    reaped: list[Job] = []
    for job_id, worker_id, attempts, max_attempts in session.execute(query.with_for_update(skip_locked=True)).all():
        retry = attempts < max_attempts
        error = (
            f"attempt {attempts}: the lease of worker {worker_id!r} expired (it died, hung or stopped making "
            "progress)" + ("; queued again" if retry else "; no attempts left")
        )
        done = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
            .values(
                status=JobStatus.QUEUED if retry else JobStatus.FAILED,
                error=error,
                lease_expires_at=None,
                updated_at=now,
            )
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        if done is not None:
            _audit(
                session,
                "job.reap",
                "job",
                job_id,
                None,
                {"worker_id": worker_id, "attempt": attempts, "outcome": "queued" if retry else "failed"},
            )
            reaped.append(_fresh_job(session, job_id))
    return reaped


def claim_job(
    session: Session,
    worker_id: str,
    *,
    kinds: Sequence[str] | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    time_limit_s: float | None = None,
) -> Job | None:
    """Reap expired jobs, then take the oldest queued job for ``worker_id``, or return None when there is none.

    The claim sets the job running, counts an attempt and gives the worker a lease of ``lease_s`` seconds, which
    :func:`heartbeat_job` renews, never past the attempt's time limit. Expired jobs of every kind are reaped first
    (:func:`reap_expired_jobs`).

    Commit right after claiming: on PostgreSQL the row stays locked (``FOR UPDATE SKIP LOCKED``, so other workers
    skip it) and on SQLite all writers wait until the transaction ends.

    Args:
        worker_id: Stable name of the worker (host and process id, say).
        kinds: Only jobs of these kinds.
        lease_s: Seconds until the job counts as abandoned unless renewed.
        time_limit_s: Time limit of an attempt for jobs queued without one (None: no limit).
    """
    if not worker_id:
        raise ValueError("a worker needs an id")
    _check_lease(lease_s)
    if time_limit_s is not None:
        _check_lease(time_limit_s)
    _serialise_writes(session)
    reap_expired_jobs(session)
    now = utcnow()
    claimable = Job.status == JobStatus.QUEUED
    if kinds:
        claimable = and_(claimable, Job.kind.in_(kinds))
    for _ in range(20):  # only loops when another worker took the candidate between our read and our write
        candidate = session.execute(
            select(Job.id, Job.time_limit_s)
            .where(claimable)
            .order_by(Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if candidate is None:
            return None
        job_id, limit = candidate
        limit = limit if limit is not None else time_limit_s
        lease = lease_s if limit is None else min(lease_s, limit)
        claimed = session.execute(
            update(Job)
            .where(Job.id == job_id, claimable)
            .values(
                status=JobStatus.RUNNING,
                attempts=Job.attempts + 1,
                worker_id=worker_id,
                lease_expires_at=now + timedelta(seconds=lease),
                started_at=now,
                time_limit_s=limit,
                progress=0.0,
                updated_at=now,
            )
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        if claimed is None:
            continue
        job = _fresh_job(session, job_id)
        details: dict[str, Any] = {"worker_id": worker_id, "attempt": job.attempts, "kind": job.kind}
        _audit(session, "job.claim", "job", job_id, None, details)
        return job
    return None


def _held_update(session: Session, job_id: int, worker_id: str, values: dict[str, Any]) -> Job:
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.worker_id == worker_id)
        .values(**values)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if done is None:
        job = session.get(Job, job_id, populate_existing=True)
        if job is None:
            raise NotFoundError(f"no job with id {job_id}")
        raise LeaseLostError(
            f"job {job_id} is no longer held by worker {worker_id!r} (it is {job.status.value}"
            + (f", held by {job.worker_id!r}" if job.status is JobStatus.RUNNING else "")
            + "); stop working on it"
        )
    return _fresh_job(session, job_id)


def heartbeat_job(
    session: Session,
    job_id: int,
    worker_id: str,
    *,
    progress: float | None = None,
    message: str | None = None,
    lease_s: float = DEFAULT_LEASE_S,
) -> Job:
    """Renew a job's lease and report progress (0-1) and a status message. Not audited (see module notes).

    The lease never reaches past the attempt's time limit. Call it when work made progress, not on a timer alone
    (:class:`feedback.worker.Worker` does so): a hung job then loses its lease and is reaped.

    Raises:
        LeaseLostError: when the job no longer belongs to ``worker_id``; the worker must abandon it.
        JobTimeLimitError: when the attempt's time limit has passed; the worker must stop and fail it.
    """
    _check_lease(lease_s)
    now = utcnow()
    lease_end = now + timedelta(seconds=lease_s)
    job = session.get(Job, job_id, populate_existing=True)
    if job is not None and job.time_limit_s is not None and job.started_at is not None:
        deadline = job.started_at + timedelta(seconds=job.time_limit_s)
        if now >= deadline:
            raise JobTimeLimitError(
                f"job {job_id} ran past its time limit of {job.time_limit_s:g} s; its lease is not renewed"
            )
        lease_end = min(lease_end, deadline)
    values: dict[str, Any] = {"lease_expires_at": lease_end, "updated_at": now}
    if progress is not None:
        if not (math.isfinite(progress) and 0.0 <= progress <= 1.0):
            raise ValueError(f"progress must be a fraction in [0, 1], got {progress}")
        values["progress"] = float(progress)
    if message is not None:
        values["message"] = message
    return _held_update(session, job_id, worker_id, values)


def complete_job(session: Session, job_id: int, worker_id: str, result: Mapping[str, Any] | None = None) -> Job:
    """Mark a job done with its JSON result.

    Raises:
        LeaseLostError: when the job no longer belongs to ``worker_id``.
    """
    now = utcnow()
    job = _held_update(
        session,
        job_id,
        worker_id,
        {
            "status": JobStatus.DONE,
            "progress": 1.0,
            "result": _json_document(dict(result or {}), "job result"),
            "lease_expires_at": None,
            "updated_at": now,
        },
    )
    _audit(session, "job.complete", "job", job_id, None, {"worker_id": worker_id, "attempt": job.attempts})
    return job


def fail_job(session: Session, job_id: int, worker_id: str, error: str, *, retry: bool = True) -> Job:
    """Record that an attempt failed: the job is queued again while attempts remain (and ``retry``), else failed.

    Raises:
        LeaseLostError: when the job no longer belongs to ``worker_id``.
    """
    now = utcnow()
    requeue = and_(Job.attempts < Job.max_attempts, bool(retry))
    job = _held_update(
        session,
        job_id,
        worker_id,
        {
            "status": case((requeue, JobStatus.QUEUED), else_=JobStatus.FAILED),
            "error": error,
            "lease_expires_at": None,
            "updated_at": now,
        },
    )
    action = "job.retry" if job.status is JobStatus.QUEUED else "job.fail"
    _audit(session, action, "job", job_id, None, {"worker_id": worker_id, "attempt": job.attempts, "error": error})
    return job
