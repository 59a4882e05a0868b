"""SQLAlchemy 2.0 models: the tables of DRG-Net's database.

Every table is created by the Alembic migrations in ``db/migrations``; ``tests/db`` proves that the migrated schema
equals this metadata on SQLite and PostgreSQL.

Conventions:

- Enumerations are stored as short strings guarded by CHECK constraints (no native PostgreSQL enum types, so adding a
  value is a plain migration on both backends).
- Timestamps are timezone-aware and in UTC on both backends (:class:`UTCDateTime`).
- JSON columns use JSONB on PostgreSQL and JSON text on SQLite.
- Artifact columns hold sha256 hex digests of files in the content-addressed store (:mod:`db.artifacts`); image rows
  hold the path of the stored photograph relative to the data directory.
- ICDR grades are 0-4; the range is repeated here because ``db`` imports nothing from ``drgnet`` (DESIGN.md §2).

One module per group of tables; import from here (``from db.models import Image``):

- :mod:`~db.models.enums`: the stored enumerations. :mod:`~db.models._base`: the base and column conventions.
- :mod:`~db.models.accounts`: users, sign-in sessions, the sign-in throttle.
- :mod:`~db.models.clinical`: images, predictions, annotations, review drafts.
- :mod:`~db.models.model_versions`: model versions and hold-out sets.
- :mod:`~db.models.operations`: jobs, the audit log, settings.
- :mod:`~db.models.append_only`: what may never change, in the ORM and in the database.
"""

from db.models._base import NAMING_CONVENTION, SHA256_LENGTH, Base, JSONType, UTCDateTime, utcnow
from db.models.accounts import LoginThrottle, User, UserSession
from db.models.append_only import (
    APPEND_ONLY_FUNCTION,
    APPEND_ONLY_FUNCTION_SQL,
    APPEND_ONLY_TABLES,
    AppendOnlyError,
    append_only_ddl,
)
from db.models.clinical import Annotation, Image, Prediction, ReviewDraft
from db.models.enums import AnnotationKind, Eye, HoldoutPurpose, JobStatus, ModelStatus, Role, ThrottleScope
from db.models.model_versions import Holdout, HoldoutImage, ModelVersion
from db.models.operations import AppSetting, AuditEntry, Job

__all__ = [
    "NAMING_CONVENTION",
    "JSONType",
    "SHA256_LENGTH",
    "utcnow",
    "UTCDateTime",
    "Base",
    "Role",
    "Eye",
    "AnnotationKind",
    "ModelStatus",
    "JobStatus",
    "HoldoutPurpose",
    "ThrottleScope",
    "User",
    "LoginThrottle",
    "UserSession",
    "ModelVersion",
    "Holdout",
    "HoldoutImage",
    "Image",
    "Prediction",
    "Annotation",
    "ReviewDraft",
    "Job",
    "AuditEntry",
    "AppSetting",
    "AppendOnlyError",
    "APPEND_ONLY_TABLES",
    "APPEND_ONLY_FUNCTION",
    "append_only_ddl",
    "APPEND_ONLY_FUNCTION_SQL",
]
