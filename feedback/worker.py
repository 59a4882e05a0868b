"""The background worker: claims jobs from the database and runs them (``drgnet worker``).

Several workers may run against one database: :func:`db.repository.claim_job` hands each job to one of them under
a lease. A heartbeat thread looks every ``lease_s / 3`` seconds and renews the lease (reporting progress) only if
the job reported progress since the last renewal: a worker that dies, or a job that hangs (a stuck data loader, a
deadlock), stops renewing, and once the lease has passed the next poll of any worker reaps the job (queued again
while attempts remain, else failed; :func:`db.repository.reap_expired_jobs`). An attempt also has a time limit
(``time_limit_s``): the lease is never renewed past it, and the job stops and fails at its next progress report
after it. A worker whose lease was taken over stops at its next progress report.

Why a killed worker cannot damage the served model: the candidate checkpoint is written to a temporary folder and
renamed, and the database learns of it, promotes it and completes the job in one transaction at the very end
(:func:`feedback.retrain.run_retraining`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db import repository
from db.models import Job
from db.operator import current_operator, operator_scope
from db.repository import JobTimeLimitError, LeaseLostError
from feedback.retrain import JOB_KIND, RetrainConfig, run_retraining
from feedback.worker_limits import DEFAULT_LEASE_S, DEFAULT_POLL_S, DEFAULT_TIME_LIMIT_S


class JobAbandoned(RuntimeError):
    """The job's lease was lost (another worker holds it now): stop without recording anything."""


class JobTimedOut(RuntimeError):
    """The attempt ran past its time limit: stop and record it as failed (retrying would hang again)."""


@dataclass(frozen=True)
class ClaimedJob:
    """What a job handler is given: the claimed job as it was when claimed (not a row bound to any session)."""

    id: int
    kind: str
    params: Mapping[str, Any]
    attempts: int


#: A job handler: (job, progress(fraction, message), finalize(session, result)) -> result.
Handler = Callable[
    [ClaimedJob, Callable[[float, str], None], Callable[[Session, dict[str, Any]], None]], dict[str, Any]
]


def default_worker_id() -> str:
    """Host name and process id: unique among running workers, readable in the jobs table."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Worker:
    """Runs queued jobs one at a time.

    Args:
        Session: Session factory of the database.
        data_dir: Data directory (photographs, artifacts, models).
        worker_id: Name recorded on claimed jobs.
        lease_s: Lease length; looked at every third of it, renewed only after progress.
        time_limit_s: Time limit of an attempt of a job queued without one.
        retrain: Configuration of retraining jobs (job params override it), e.g. ``holdout`` (a registered name).
        log: Where progress lines go.
    """

    Session: sessionmaker[Session]
    data_dir: Path | None = None
    worker_id: str = field(default_factory=default_worker_id)
    lease_s: float = DEFAULT_LEASE_S
    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    log: Callable[[str], None] = print

    def handlers(self) -> dict[str, Handler]:
        return {JOB_KIND: self._retrain}

    def _retrain(
        self,
        job: ClaimedJob,
        progress: Callable[[float, str], None],
        finalize: Callable[[Session, dict[str, Any]], None],
    ) -> dict[str, Any]:
        return run_retraining(
            self.Session,
            job.params,
            data_dir=self.data_dir,
            base=self.retrain,
            job_tag=f"j{job.id}a{job.attempts}",
            progress=progress,
            finalize=finalize,
        )

    def run_once(self) -> Job | None:
        """Claim one job and run it to the end; None when no job was waiting."""
        with operator_scope(current_operator() or f"worker:{self.worker_id}"):
            return self._run_once()

    def _run_once(self) -> Job | None:
        with self.Session.begin() as session:
            job = repository.claim_job(
                session,
                self.worker_id,
                kinds=list(self.handlers()),
                lease_s=self.lease_s,
                time_limit_s=self.time_limit_s,
            )
            if job is None:
                return None
            job_id, kind, attempt = job.id, job.kind, job.attempts
            limit = job.time_limit_s
            params: Mapping[str, Any] = dict(job.params or {})
        self.log(f"[{self.worker_id}] job {job_id} ({kind}), attempt {attempt}: started")
        deadline = None if limit is None else time.monotonic() + limit
        state: dict[str, Any] = {"progress": 0.0, "message": "started", "ticks": 0}
        lost = threading.Event()
        timed_out = threading.Event()
        stop = threading.Event()

        def progress(fraction: float, message: str) -> None:
            if lost.is_set():
                raise JobAbandoned(f"job {job_id}: lease lost to another worker")
            if timed_out.is_set() or (deadline is not None and time.monotonic() > deadline):
                raise JobTimedOut(f"job {job_id}: ran past its time limit of {limit:g} s")
            state["progress"] = min(max(float(fraction), 0.0), 1.0)
            state["message"] = message
            state["ticks"] += 1

        def finalize(session: Session, result: dict[str, Any]) -> None:
            repository.complete_job(session, job_id, self.worker_id, result)

        heart = threading.Thread(
            target=self._beat, args=(job_id, state, lost, timed_out, stop), name=f"heartbeat-{job_id}", daemon=True
        )
        heart.start()
        job_view = ClaimedJob(id=job_id, kind=kind, params=dict(params), attempts=attempt)
        try:
            result = self.handlers()[kind](job_view, progress, finalize)
            self.log(f"[{self.worker_id}] job {job_id}: done ({_summary(result)})")
        except (JobAbandoned, LeaseLostError) as exc:
            self.log(f"[{self.worker_id}] job {job_id}: abandoned ({exc})")
        except Exception as exc:
            self._fail(job_id, exc)
        finally:
            stop.set()
            heart.join()
        with self.Session() as session:
            return repository.get_job(session, job_id)

    def _beat(
        self,
        job_id: int,
        state: dict[str, Any],
        lost: threading.Event,
        timed_out: threading.Event,
        stop: threading.Event,
    ) -> None:
        """Renew the job's lease every third of it while the job reports progress (the heartbeat thread)."""
        renewed_at = 0
        while not stop.wait(self.lease_s / 3):
            ticks = state["ticks"]
            if ticks == renewed_at:
                continue  # no progress since the last renewal: let the lease run out if it never comes
            try:
                with self.Session.begin() as s:
                    repository.heartbeat_job(
                        s,
                        job_id,
                        self.worker_id,
                        progress=state["progress"],
                        message=state["message"],
                        lease_s=self.lease_s,
                    )
                renewed_at = ticks
            except LeaseLostError:
                lost.set()
                return
            except JobTimeLimitError:
                timed_out.set()
                return
            except Exception as exc:  # a database hiccup: try again at the next beat
                self.log(f"[{self.worker_id}] heartbeat of job {job_id} failed: {exc}")

    def _fail(self, job_id: int, exc: Exception) -> None:
        # Bad input (no active version, too few corrections, bad params) will not get better by retrying,
        # and neither will an attempt that hung until its time limit.
        retry = not isinstance(exc, ValueError | PermissionError | JobTimedOut)
        detail = f"{type(exc).__name__}: {exc}"
        self.log(f"[{self.worker_id}] job {job_id}: failed ({detail})")
        if retry:
            self.log(traceback.format_exc())
        try:
            with self.Session.begin() as session:
                repository.fail_job(session, job_id, self.worker_id, detail[:4000], retry=retry)
        except LeaseLostError:
            pass

    def run_forever(self, poll_s: float = DEFAULT_POLL_S, stop: threading.Event | None = None) -> None:
        """Run jobs until ``stop`` is set, sleeping ``poll_s`` seconds whenever the queue is empty."""
        stop = stop or threading.Event()
        while not stop.is_set():
            job = self.run_once()
            if job is None:
                stop.wait(poll_s)


def _summary(result: Mapping[str, Any]) -> str:
    if "version" in result:
        return f"{'promoted' if result.get('promoted') else 'rejected'} {result['version']}"
    return ", ".join(f"{k}={v}" for k, v in list(result.items())[:3])
