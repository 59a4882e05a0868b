"""The settings of one retraining run; job params override them by (dotted) name."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from drgnet.config import LossConfig, override, parse_settings
from feedback.weak_labels import DEFAULT_TOLERANCE_PX

JOB_KIND = "retrain"

#: Loss settings that were once flat fields of RetrainConfig; job params queued with those names still work.
LEGACY_LOSS_NAMES = frozenset(
    {
        "lesion_weight",
        "lesion_focal_gamma",
        "grade_weight",
        "grade_loss",
        "gce_q",
        "lesion_grade_weight",
        "constraint_weight",
        "attention_weight",
    }
)


def _robust_loss() -> LossConfig:
    # Corrected grades may be wrong: generalised cross-entropy instead of the ordinal CE of first training.
    return LossConfig(grade_loss="gce")


@dataclass(frozen=True)
class RetrainConfig:
    """One retraining run. Job params override these fields by name (:meth:`from_params`)."""

    steps: int = 200  # optimisation steps
    batch_size: int = 8  # corrected images per batch
    replay_per_batch: int = 4  # earlier training images mixed into each batch; 0: no replay
    replay_data: str = ""  # labelled folder to replay; "": the active version's own training data, if recorded
    replay_layout: str = "auto"
    lr: float = 2e-4  # small: the model is already trained
    encoder_lr_scale: float = 0.3
    weight_decay: float = 1e-4
    # The weights of the loss terms; grade_loss "gce" or "ce" (ordinal is not offered for noisy grades).
    loss: LossConfig = field(default_factory=_robust_loss)
    drop_fraction: float = 0.2  # small-loss selection: drop this share of corrected images' grade losses per batch
    ema_decay: float = 0.99  # EMA teacher; 0: none (the student itself is evaluated and saved)
    consistency_weight: float = 0.5  # KL from the teacher's grade distribution on corrected images
    # BCE towards the teacher's lesion probabilities on the pixels of corrected images that no correction labels
    # (untouched by strokes, lesions a correction left out): they stay unknown, but the maps may not drift there.
    lesion_consistency_weight: float = 1.0
    # Dice also on lesion maps a correction labels only in part (strokes). Off: Dice on fully labelled maps only
    # (full masks, grade 0, replay), the focal term alone on strokes. Dice over strokes that are mostly painted is
    # met by "lesion everywhere": with it, partial corrections cost 0.17 source-camera lesion AUPR in
    # `drgnet bench feedback`, without it 0.01 (docs/benchmarks.md).
    partial_dice: bool = False
    tolerance_px: int = DEFAULT_TOLERANCE_PX  # ignored band at stroke edges (photograph pixels)
    flip: bool = True  # random horizontal flips of corrected images
    holdout: str = ""  # name of the registered hold-out the gate evaluates on; "": the one registered last
    min_holdout_images: int = 50  # a smaller hold-out rejects: its figures would not mean anything
    holdout_fraction: float = 0.1  # of corrected images (by sha256), never trained on, reported (not gated)
    max_qwk_drop: float = 0.02
    max_aupr_drop: float = 0.02
    max_referable_drop: float = 0.02  # referable sensitivity and specificity, each
    healthy_per_batch: int = 2  # real healthy photographs (registered healthy replay sets) in each batch
    min_corrections: int = 1  # fewer trainable corrected images: the job fails without retrying
    eval_batch_size: int = 16
    seed: int = 0
    device: str = "cpu"

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, base: RetrainConfig | None = None) -> RetrainConfig:
        """``base`` (default: the defaults) with the fields named in ``params`` (``steps``, ``loss.gce_q``);
        unknown names are refused with the valid ones listed."""
        params = dict(params or {})
        if "holdout_data" in params:
            raise ValueError(
                "holdout_data (a folder) is no longer read: the gate evaluates only on a frozen hold-out registered "
                "in the database; register the folder with `drgnet model holdout register NAME FOLDER` and name it "
                "with holdout=NAME"
            )
        params.pop("trigger", None)  # who queued the job, not a setting
        params = {f"loss.{k}" if k in LEGACY_LOSS_NAMES else k: v for k, v in params.items()}
        cfg = override(base or cls(), params)
        cfg.check()
        return cfg

    @staticmethod
    def parse_settings(pairs: Iterable[str]) -> dict[str, Any]:
        """``key.path=value`` pairs (``--set``) as typed job params; old flat loss names mean ``loss.<name>``."""
        pairs = [f"loss.{p}" if p.partition("=")[0].strip() in LEGACY_LOSS_NAMES else p for p in pairs]
        return parse_settings(pairs, RetrainConfig)

    def check(self) -> None:
        """Refuse settings a run cannot use; the ValueError names the setting."""
        if self.loss.grade_loss not in ("gce", "ce"):
            raise ValueError(f"loss.grade_loss must be 'gce' or 'ce', got {self.loss.grade_loss!r}")
        if self.steps < 0 or self.batch_size < 1 or self.replay_per_batch < 0 or self.healthy_per_batch < 0:
            raise ValueError("steps >= 0, batch_size >= 1, replay_per_batch >= 0 and healthy_per_batch >= 0 are needed")
        if self.min_holdout_images < 1:
            raise ValueError(f"min_holdout_images must be at least 1, got {self.min_holdout_images}")
        drops = (self.max_qwk_drop, self.max_aupr_drop, self.max_referable_drop)
        if not all(math.isfinite(d) and d >= 0 for d in drops):
            raise ValueError(f"the allowed drops must be finite and >= 0, got {drops}")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in [0, 1), got {self.holdout_fraction}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    def naive(self) -> RetrainConfig:
        """The same budget as plain fine-tuning: CE / BCE, no selection, no replay, no teacher (the baseline)."""
        return dataclasses.replace(
            self,
            loss=dataclasses.replace(self.loss, grade_loss="ce", lesion_focal_gamma=0.0),
            drop_fraction=0.0,
            replay_per_batch=0,
            ema_decay=0.0,
            healthy_per_batch=0,
            consistency_weight=0.0,
            lesion_consistency_weight=0.0,
            partial_dice=True,
            tolerance_px=0,
        )
