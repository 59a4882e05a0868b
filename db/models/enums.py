"""The enumerations stored in the tables (as short strings guarded by CHECK constraints)."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    """What a user may do: clinicians review and annotate; admins also manage users and model versions."""

    CLINICIAN = "clinician"
    ADMIN = "admin"


class Eye(enum.StrEnum):
    """Which eye a fundus photograph shows."""

    LEFT = "left"
    RIGHT = "right"
    UNKNOWN = "unknown"


class AnnotationKind(enum.StrEnum):
    """How much of an image a clinician's annotation covers.

    ``grade-only``: a grade, no lesion masks. ``partial``: strokes on some lesion maps (painted = present,
    erased = absent, untouched = unknown). ``full``: complete lesion masks. ``ungradable``: the photograph cannot be
    graded (no grade).
    """

    GRADE_ONLY = "grade-only"
    PARTIAL = "partial"
    FULL = "full"
    UNGRADABLE = "ungradable"


class ModelStatus(enum.StrEnum):
    """Life cycle of a model version: at most one is ``active`` at any time."""

    CANDIDATE = "candidate"
    #: Passed the hold-out gate; serves nobody until an admin approves it (or rejects it), with a reason.
    AWAITING_APPROVAL = "awaiting-approval"
    ACTIVE = "active"
    REJECTED = "rejected"
    RETIRED = "retired"


class JobStatus(enum.StrEnum):
    """Life cycle of a background job."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class HoldoutPurpose(enum.StrEnum):
    """What a registered reference set is for.

    ``holdout``: the frozen set the retraining gate evaluates on, never trained on. ``healthy-replay``: real
    photographs of healthy eyes that retraining mixes into every batch, so a batch of corrected DR cases cannot
    teach "this camera means disease".
    """

    HOLDOUT = "holdout"
    HEALTHY_REPLAY = "healthy-replay"


class ThrottleScope(enum.StrEnum):
    """What failed sign-ins are counted against: the account named, or the client (network address) trying."""

    ACCOUNT = "account"
    CLIENT = "client"
