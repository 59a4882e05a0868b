"""Queueing retraining: by an admin in the app, from the command line, or automatically after enough corrections.

The review app calls :func:`queue_retraining` (admin button) and :func:`maybe_queue_retraining` after each saved
annotation, inside the transaction that saved it. Both return the job they queued (or the one already waiting).

Automatic retraining needs corrections from several accounts (:data:`feedback.settings.RETRAIN_MIN_ANNOTATORS`,
at least 2): one account alone (one clinician, or one stolen password) must never change the model everyone uses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from db import repository
from db.models import Job, JobStatus, Role
from feedback import settings
from feedback.retrain import JOB_KIND, RetrainConfig

#: New corrections since the last retraining job that queue the next one; 0 turns automatic retraining off.
RETRAIN_AFTER_ENV = "DRGNET_RETRAIN_AFTER"
DEFAULT_RETRAIN_AFTER = 50


def queue_retraining(session: Session, user_id: int | None, params: Mapping[str, Any] | None = None) -> Job:
    """Queue a retraining job; an admin's request from the app (``user_id``) or the system's (None).

    A retraining job that is still waiting is returned instead of queueing a second one: it will see every
    correction saved until it starts. Settings asked for (``params`` other than ``trigger``) that differ from the
    waiting job's are refused rather than dropped: the waiting job would run without them.

    Raises:
        PermissionError: when ``user_id`` is not an active admin.
        ValueError: for unknown retraining parameters, or settings other than those of the job already waiting.
    """
    if user_id is not None:
        user = repository.get_user_by_id(session, user_id)
        if user is None or not user.active or user.role is not Role.ADMIN:
            raise PermissionError("only an active admin can start retraining")
    asked = _settings_of(params)
    RetrainConfig.from_params(asked)  # refuse bad params now
    waiting = repository.oldest_job(session, JOB_KIND, [JobStatus.QUEUED])
    if waiting is not None:
        has = _settings_of(waiting.params)
        if asked and asked != has:
            raise ValueError(
                f"retraining job {waiting.id} is already waiting with other settings ({_settings(has)}); it will "
                f"run with those, not {_settings(asked)}. Queue again once it has started."
            )
        return waiting
    return repository.enqueue_job(session, JOB_KIND, dict(params or {}), actor_id=user_id)


def _settings_of(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The retraining settings of a job's params (``trigger`` only says who queued it)."""
    return {k: v for k, v in (params or {}).items() if k != "trigger"}


def _settings(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "the defaults"


def corrections_since_last_retraining(session: Session) -> int:
    """Annotations saved after the most recent retraining job was queued (all of them if none was)."""
    return corrections_and_annotators_since_last_retraining(session)[0]


def corrections_and_annotators_since_last_retraining(session: Session) -> tuple[int, int]:
    """Corrections saved after the most recent retraining job was queued, and how many accounts wrote them."""
    # Imported reference labels are not corrections: they train nothing (feedback.weak_labels), so they queue nothing.
    return repository.corrections_since(session, repository.last_job_queued_at(session, JOB_KIND))


def retrain_after() -> int:
    """The automatic-retraining threshold: ``$DRGNET_RETRAIN_AFTER`` or :data:`DEFAULT_RETRAIN_AFTER`."""
    raw = os.environ.get(RETRAIN_AFTER_ENV, "")
    try:
        return int(raw) if raw else DEFAULT_RETRAIN_AFTER
    except ValueError:
        raise ValueError(f"${RETRAIN_AFTER_ENV} must be a whole number of corrections, got {raw!r}") from None


def maybe_queue_retraining(session: Session, threshold: int | None = None) -> Job | None:
    """Queue a retraining job when ``threshold`` corrections from at least
    :data:`~feedback.settings.RETRAIN_MIN_ANNOTATORS` accounts arrived since the last one; else None.

    Nothing is queued while a retraining job waits or runs.
    """
    threshold = retrain_after() if threshold is None else threshold
    min_annotators = max(2, int(settings.get(session, settings.RETRAIN_MIN_ANNOTATORS)))
    if threshold <= 0:
        return None
    if repository.oldest_job(session, JOB_KIND, [JobStatus.QUEUED, JobStatus.RUNNING]) is not None:
        return None
    count, annotators = corrections_and_annotators_since_last_retraining(session)
    if count < threshold or annotators < min_annotators:
        return None
    return repository.enqueue_job(session, JOB_KIND, {"trigger": "auto"})
