"""Noise-robust fine-tuning on clinician corrections, the hold-out gate and model-version registration.

One retraining run (:func:`run_retraining`, what the worker does for a ``retrain`` job):

1. Read the active model version and the weak labels of every corrected image (:mod:`feedback.weak_labels`).
2. Split off the correction hold-out: corrected images whose photograph's sha256 falls in the first
   ``holdout_fraction`` of the hash space (:func:`in_correction_holdout`). Deterministic, so an image is either
   always or never trained on, whichever job or worker looks at it.
3. Fine-tune a copy of the active model (:func:`finetune`, a task of :mod:`drgnet.training.engine`): generalised
   cross-entropy for grades, small-loss selection among corrected images, replay of earlier training data in every
   batch, the lesion-grade constraint and an EMA teacher whose predictions are soft targets on corrected images.
4. Evaluate the active version and the candidate on the same frozen hold-out in the same run: the hold-out
   registered in the database (:mod:`feedback.holdouts`; retraining refuses to run without one, and its digest is
   checked), plus, for information only, the correction hold-out (corrected photographs written by the same
   clinicians whose corrections are being learnt: not an independent judge, so it never decides).
5. Write the candidate's checkpoint and, in ONE transaction, register it with its sha256 and its gate report, and
   let the caller complete the job. A candidate that fails the gate is kept as ``rejected``; one that passes waits
   as ``awaiting-approval`` for an admin (the Models page), unless an admin switched on automatic promotion
   (:data:`feedback.settings.AUTO_PROMOTE`). The active model is never touched before that transaction commits.

Replay balances what is learnt: earlier training data (``replay_data``) and real photographs of healthy eyes from
every registered healthy replay set (``healthy_per_batch`` in each batch), so a batch of corrected DR cases from a
real camera cannot teach "this camera means disease".

Where things live:

=================  ==============================================================================
``config``         :class:`RetrainConfig` (nests drgnet's ``LossConfig``), ``JOB_KIND``
``data``           corrected images, correction / replay datasets, mixed batches, reading corrections
``task``           :class:`FeedbackTask` (the objective), the EMA teacher, :func:`finetune`
``gate``           hold-out metrics and the fail-closed :func:`gate`
``registration``   candidate folders, :func:`register_checkpoint`, :func:`load_version_model`
``run``            :func:`run_retraining`: the whole run, database to registered candidate
=================  ==============================================================================
"""

from feedback.retrain.config import JOB_KIND, RetrainConfig
from feedback.retrain.data import (
    CorrectedImage,
    CorrectionDataset,
    ReplayDataset,
    in_correction_holdout,
    load_corrections,
    mixed_batches,
    open_labelled,
)
from feedback.retrain.gate import GATED_METRICS, gate, holdout_metrics
from feedback.retrain.registration import (
    MODELS_DIRNAME,
    load_version_model,
    models_dir,
    register_checkpoint,
    remove_stale_staging,
    resolve_checkpoint,
)
from feedback.retrain.run import run_retraining
from feedback.retrain.task import FeedbackTask, finetune, make_teacher, unlabelled_consistency

__all__ = [
    "GATED_METRICS",
    "JOB_KIND",
    "MODELS_DIRNAME",
    "CorrectedImage",
    "CorrectionDataset",
    "FeedbackTask",
    "ReplayDataset",
    "RetrainConfig",
    "finetune",
    "gate",
    "holdout_metrics",
    "in_correction_holdout",
    "load_corrections",
    "load_version_model",
    "make_teacher",
    "mixed_batches",
    "models_dir",
    "open_labelled",
    "register_checkpoint",
    "remove_stale_staging",
    "resolve_checkpoint",
    "run_retraining",
    "unlabelled_consistency",
]
