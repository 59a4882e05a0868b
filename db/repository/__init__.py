"""Repository functions: every read and write the review app, the feedback layer and the worker make.

Each function takes a :class:`~sqlalchemy.orm.Session` and never commits: the caller owns the transaction
(``with Session.begin() as session: ...``), so several calls commit or roll back together. Every write also appends
an :class:`~db.models.AuditEntry` in the same transaction, so the audit log holds exactly the writes that committed.
The exceptions: :func:`heartbeat_job` (progress reports are state, not decisions, and would flood the log), and
the session and sign-in throttle rows, which :mod:`db.accounts` writes as part of a decision it audits itself
(``user.login``, ``user.lockout``, ``user.logout`` ...).

Annotations are append-only: there is no function to change or delete one (the models refuse it too). A new
opinion is a new row; :func:`add_annotation` links it to the same annotator's previous annotation of the image.

Concurrency: job claiming uses ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL and an immediate (write-locked)
transaction on SQLite; promotions lock the model-version table, so exactly one version is ever active (a partial
unique index enforces it as well).

One module per aggregate; import from here (``from db import repository``), not from the modules:

- :mod:`~db.repository.users`: accounts and passwords.
- :mod:`~db.repository.sessions`: signed-in browser sessions. :mod:`~db.repository.throttles`: failed sign-in counters.
  Both are written for :mod:`db.accounts`, which decides (and audits) when.
- :mod:`~db.repository.images`: photographs. :mod:`~db.repository.predictions`: model predictions of them.
- :mod:`~db.repository.annotations`: clinicians' annotations and unsaved review drafts.
- :mod:`~db.repository.review_queue`: the worklist query.
- :mod:`~db.repository.model_versions`: registration, promotion, approval, rollback; the active version.
- :mod:`~db.repository.holdouts`: frozen hold-out and replay sets.
- :mod:`~db.repository.settings`: run-time settings.
- :mod:`~db.repository.jobs`: the job queue with leases.
- :mod:`~db.repository.audit`: the audit log.
- :mod:`~db.repository.references`: the file hashes rows refer to, which :mod:`db.artifacts` garbage collection keeps.
"""

from db.repository._common import NUM_GRADES, NotFoundError
from db.repository.annotations import (
    add_annotation,
    annotations_for_image,
    corrections_since,
    current_annotations,
    delete_draft,
    get_draft,
    save_draft,
)
from db.repository.audit import audit_entries, record_audit, record_event
from db.repository.holdouts import (
    HoldoutMember,
    add_holdout,
    get_holdout,
    holdout_digest,
    holdout_image_hashes,
    holdout_members,
    list_holdouts,
)
from db.repository.images import add_image, count_images, get_image, get_image_by_sha
from db.repository.jobs import (
    DEFAULT_LEASE_S,
    DEFAULT_MAX_ATTEMPTS,
    JobTimeLimitError,
    LeaseLostError,
    claim_job,
    complete_job,
    enqueue_job,
    fail_job,
    get_job,
    heartbeat_job,
    last_job_queued_at,
    list_jobs,
    oldest_job,
    reap_expired_jobs,
)
from db.repository.model_versions import (
    MODEL_STATUS_CHANGES,
    active_model_version,
    add_model_version,
    approve_model_version,
    get_model_version,
    get_model_version_by_name,
    list_model_versions,
    model_version_by_checkpoint,
    promote_model_version,
    reject_model_version,
    rollback_model_version,
    set_model_version_status,
    versions_awaiting_approval,
)
from db.repository.predictions import (
    add_prediction,
    count_predictions,
    expert_model_grades,
    get_prediction,
    latest_prediction,
    prediction_of_model,
    predictions_for_image,
    set_display_hashes,
)
from db.repository.references import referenced_artifact_hashes, referenced_image_hashes
from db.repository.review_queue import QueueOrder, ReviewQueueRow, review_queue
from db.repository.sessions import add_user_session, get_user_session, revoke_user_sessions, user_session_by_token_hash
from db.repository.settings import get_setting, set_setting
from db.repository.throttles import find_throttle, get_or_add_throttle, locked_throttles
from db.repository.users import create_user, disable_user, get_user, get_user_by_id, list_users, verify_password

__all__ = [
    "DEFAULT_LEASE_S",
    "DEFAULT_MAX_ATTEMPTS",
    "HoldoutMember",
    "JobTimeLimitError",
    "LeaseLostError",
    "MODEL_STATUS_CHANGES",
    "NUM_GRADES",
    "NotFoundError",
    "QueueOrder",
    "ReviewQueueRow",
    "active_model_version",
    "add_annotation",
    "add_holdout",
    "add_image",
    "add_model_version",
    "add_prediction",
    "annotations_for_image",
    "approve_model_version",
    "audit_entries",
    "claim_job",
    "complete_job",
    "corrections_since",
    "count_images",
    "count_predictions",
    "create_user",
    "current_annotations",
    "delete_draft",
    "disable_user",
    "enqueue_job",
    "expert_model_grades",
    "fail_job",
    "get_draft",
    "get_holdout",
    "get_image",
    "get_image_by_sha",
    "get_job",
    "get_model_version",
    "get_model_version_by_name",
    "get_prediction",
    "get_setting",
    "get_user",
    "get_user_by_id",
    "heartbeat_job",
    "holdout_digest",
    "holdout_image_hashes",
    "holdout_members",
    "last_job_queued_at",
    "latest_prediction",
    "list_holdouts",
    "list_jobs",
    "list_model_versions",
    "list_users",
    "model_version_by_checkpoint",
    "oldest_job",
    "prediction_of_model",
    "predictions_for_image",
    "promote_model_version",
    "reap_expired_jobs",
    "record_audit",
    "record_event",
    "reject_model_version",
    "review_queue",
    "rollback_model_version",
    "save_draft",
    "set_display_hashes",
    "set_model_version_status",
    "set_setting",
    "verify_password",
    "versions_awaiting_approval",
    "referenced_artifact_hashes",
    "referenced_image_hashes",
    "add_user_session",
    "get_user_session",
    "revoke_user_sessions",
    "user_session_by_token_hash",
    "find_throttle",
    "get_or_add_throttle",
    "locked_throttles",
]
