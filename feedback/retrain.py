"""Noise-robust fine-tuning on clinician corrections, the hold-out gate and model-version registration.

One retraining run (:func:`run_retraining`, what the worker does for a ``retrain`` job):

1. Read the active model version and the weak labels of every corrected image (:mod:`feedback.weak_labels`).
2. Split off the correction hold-out: corrected images whose photograph's sha256 falls in the first
   ``holdout_fraction`` of the hash space (:func:`in_correction_holdout`). Deterministic, so an image is either
   always or never trained on, whichever job or worker looks at it.
3. Fine-tune a copy of the active model (:func:`finetune`): generalised cross-entropy for grades, small-loss
   selection among corrected images, replay of earlier training data in every batch, the lesion-grade constraint
   (so grade-only corrections teach the lesion branch) and an EMA teacher whose predictions are soft targets
   on corrected images; the EMA weights are what is evaluated and saved.
4. Evaluate the active version and the candidate on the same frozen hold-out in the same run: the hold-out
   registered in the database (:mod:`feedback.holdouts`; retraining refuses to run without one, and its digest is
   checked), plus, for information only, the correction hold-out (corrected photographs written by the same
   clinicians whose corrections are being learnt: not an independent judge, so it never decides).
5. Write the candidate's checkpoint under ``<data dir>/models/<name>/`` (built in a temporary folder and renamed:
   a killed worker leaves no half-written version) and, in ONE transaction, register it with its sha256 and its
   gate report, and let the caller complete the job. A candidate that fails the gate is kept as ``rejected``; one
   that passes waits as ``awaiting-approval`` for an admin (the Models page), unless an admin switched on
   automatic promotion (:data:`feedback.settings.AUTO_PROMOTE`). The active model is never touched before that
   transaction commits.

The gate (:func:`gate`) fails closed: on the registered hold-out the candidate's QWK may drop at most
``max_qwk_drop`` below the active version's, its mean lesion AUPR at most ``max_aupr_drop``, and its referable
sensitivity and specificity each at most ``max_referable_drop``; a figure that cannot be computed for either model,
or a hold-out smaller than ``min_holdout_images``, rejects.

Replay balances what is learnt: earlier training data (``replay_data``) and real photographs of healthy eyes from
every registered healthy replay set (``healthy_per_batch`` in each batch), so a batch of corrected DR cases from a
real camera cannot teach "this camera means disease".
"""

from __future__ import annotations

import copy
import dataclasses
import io
import math
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sqlalchemy.orm import Session, sessionmaker
from torch.utils.data import DataLoader, Dataset, RandomSampler

from db import repository
from db.artifacts import artifact_store
from db.engine import data_dir as default_data_dir
from db.ingest import read_image_bytes
from db.models import HoldoutPurpose, Image, ModelStatus
from drgnet.config import to_dict
from drgnet.data.preprocess import load_rgb, preprocess
from drgnet.labels import NUM_GRADES, NUM_LESIONS
from drgnet.losses import (
    attention_coverage_loss,
    cross_entropy_per_sample,
    generalized_cross_entropy,
    lesion_loss,
    small_loss_weights,
    soft_target_kl,
    symmetric_kl,
)
from drgnet.model import DRGNet, ModelOutput
from drgnet.model.checkpoint import WEIGHTS, load_checkpoint, save_checkpoint, sha256_file
from drgnet.training.data import FundusDataset
from drgnet.training.evaluate import evaluate
from feedback import holdouts, settings
from feedback.weak_labels import DEFAULT_TOLERANCE_PX, WeakLabel, collect_weak_labels

MODELS_DIRNAME = "models"
JOB_KIND = "retrain"

Progress = Callable[[float, str], None]


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
    grade_loss: str = "gce"  # "gce" (noise-robust) or "ce"
    gce_q: float = 0.7
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
    lesion_weight: float = 1.0
    lesion_focal_gamma: float = 2.0  # 0: plain BCE
    grade_weight: float = 1.0
    lesion_grade_weight: float = 0.5  # the lesion-only grade head's own loss
    constraint_weight: float = 0.2  # symmetric KL lesion-only vs fused grade: grade-only corrections teach lesions
    attention_weight: float = 0.1
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
        """``base`` (default: the defaults) with the fields named in ``params``; unknown names are refused."""
        base = base or cls()
        params = dict(params or {})
        names = {f.name for f in dataclasses.fields(cls)}
        if "holdout_data" in params:
            raise ValueError(
                "holdout_data (a folder) is no longer read: the gate evaluates only on a frozen hold-out registered "
                "in the database; register the folder with `drgnet model holdout register NAME FOLDER` and name it "
                "with holdout=NAME"
            )
        unknown = sorted(k for k in params if k not in names and k != "trigger")
        if unknown:
            raise ValueError(f"unknown retraining parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        changes = {}
        for f in dataclasses.fields(cls):
            if f.name in params:
                kind = type(getattr(base, f.name))
                value = params[f.name]
                changes[f.name] = kind(value) if kind in (int, float, str, bool) else value
        cfg = dataclasses.replace(base, **changes)
        cfg.check()
        return cfg

    def check(self) -> None:
        if self.grade_loss not in ("gce", "ce"):
            raise ValueError(f"grade_loss must be 'gce' or 'ce', got {self.grade_loss!r}")
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
            grade_loss="ce",
            drop_fraction=0.0,
            replay_per_batch=0,
            ema_decay=0.0,
            healthy_per_batch=0,
            consistency_weight=0.0,
            lesion_consistency_weight=0.0,
            partial_dice=True,
            lesion_focal_gamma=0.0,
            tolerance_px=0,
        )


# ------------------------------------------------------------------------------------------------------- datasets


def in_correction_holdout(sha256: str, fraction: float) -> bool:
    """Whether a corrected photograph belongs to the correction hold-out (the first ``fraction`` of hash space)."""
    return fraction > 0 and int(sha256[:8], 16) / 16**8 < fraction


@dataclass
class CorrectedImage:
    """A corrected photograph with its weak label, both at the photograph's resolution."""

    image: np.ndarray
    label: WeakLabel
    sha256: str = ""
    source: str | None = None  # camera / site, to check the hold-out has healthy photographs of it


class CorrectionDataset(Dataset):
    """Corrected photographs as batch items (``drgnet.training.task`` keys plus ``sample_weight``, ``soft_grade``
    and ``corrected`` = 1). Ignored pixels and pixels outside the field of view get ``mask_weights`` 0."""

    def __init__(self, items: Sequence[CorrectedImage], size: int, flip: bool = False, seed: int = 0) -> None:
        self.items = list(items)
        self.size = size
        self.flip = flip
        self._rng = np.random.default_rng(seed)
        self._cache: dict[int, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.items)

    def prepared(self, i: int) -> dict[str, torch.Tensor]:
        if i not in self._cache:
            item = self.items[i]
            label = item.label
            stack = np.concatenate([label.masks, label.supervised.astype(np.uint8)])
            pre = preprocess(item.image, self.size, source=f"image {label.image_id}", masks=stack, check_fundus=False)
            masks = torch.from_numpy(pre.masks[:NUM_LESIONS].astype(np.float32))
            weights = torch.from_numpy(pre.masks[NUM_LESIONS:].astype(np.float32)) * torch.from_numpy(pre.fov_mask)
            self._cache[i] = {
                "image": torch.from_numpy(pre.image).permute(2, 0, 1).float().div_(255.0),
                "masks": masks,
                "mask_weights": weights.float(),
                "fov": torch.from_numpy(pre.fov_mask).float(),
                "grade": torch.tensor(label.grade, dtype=torch.long),
                "sample_weight": torch.tensor(label.sample_weight, dtype=torch.float32),
                "soft_grade": torch.from_numpy(np.asarray(label.soft_grade, np.float32)),
                "corrected": torch.tensor(1.0),
            }
        return self._cache[i]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = dict(self.prepared(i))
        if self.flip and self._rng.random() < 0.5:
            for key in ("image", "masks", "mask_weights", "fov"):
                item[key] = item[key].flip(-1)
        return item


class ReplayDataset(Dataset):
    """Earlier labelled training data (a ``FundusDataset``) with the keys of :class:`CorrectionDataset`."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = dict(self.base[i])
        grade = int(item["grade"])
        soft = torch.zeros(NUM_GRADES)
        if grade >= 0:
            soft[grade] = 1.0
        item["sample_weight"] = torch.tensor(1.0)
        item["soft_grade"] = soft
        item["corrected"] = torch.tensor(0.0)
        item["fov"] = (item["mask_weights"].amax(dim=0) > 0).float()  # only corrected images use it
        return item


def open_labelled(path: str, layout: str, size: int, transform: Any = None) -> Dataset:
    """A labelled dataset folder as a ``FundusDataset`` at the model's input size."""
    from drgnet.data.readers import open_dataset
    from drgnet.training.data import FundusDataset

    return FundusDataset(open_dataset(path, layout=layout), size, transform)


def _forever(dataset: Dataset, batch_size: int, seed: int) -> Iterator[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(dataset, replacement=True, num_samples=1 << 30, generator=generator)
    yield from DataLoader(dataset, batch_size, sampler=sampler)


# ---------------------------------------------------------------------------------------------------- training


class EMATeacher:
    """Exponential moving average of a model's weights; its predictions are the soft targets of the student.

    The decay ramps up as ``min(decay, (1 + step) / (10 + step))``, so a short run still moves the teacher.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.steps = 0

    @torch.no_grad()
    def update(self, student: torch.nn.Module) -> None:
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for t, s in zip(self.model.parameters(), student.parameters(), strict=True):
            t.mul_(d).add_(s.detach(), alpha=1 - d)
        for t, s in zip(self.model.buffers(), student.buffers(), strict=True):
            t.copy_(s)
        self.steps += 1


class FeedbackTask(torch.nn.Module):
    """The fine-tuning objective on a mixed batch of corrected and replayed images.

    ``forward(batch) -> {"loss": ..., components}`` like :class:`drgnet.training.task.JointTask`; the grade terms
    are per-sample (GCE or CE), weighted by ``sample_weight`` and by small-loss selection among corrected images.
    """

    def __init__(self, model: DRGNet, cfg: RetrainConfig, teacher: EMATeacher | None = None) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.teacher = teacher

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        output = self.model(batch["image"])
        teacher = None
        corrected = batch["corrected"] > 0
        wanted = self.cfg.consistency_weight > 0 or self.cfg.lesion_consistency_weight > 0
        if self.teacher is not None and wanted and bool(corrected.any()):
            with torch.no_grad():
                teacher = self.teacher.model(batch["image"])
        return self.losses(output, batch, teacher)

    def _grade_terms(self, logits: torch.Tensor, grades: torch.Tensor) -> torch.Tensor:
        if self.cfg.grade_loss == "gce":
            return generalized_cross_entropy(logits, grades, q=self.cfg.gce_q)
        return cross_entropy_per_sample(logits, grades)

    def losses(
        self, output: ModelOutput, batch: dict[str, torch.Tensor], teacher: ModelOutput | None = None
    ) -> dict[str, torch.Tensor]:
        """The loss terms; ``teacher``: the EMA teacher's output on the same batch (consistency terms)."""
        cfg = self.cfg
        grades = batch["grade"]
        known = grades >= 0
        corrected = batch["corrected"] > 0
        per_sample = self._grade_terms(output.grade_logits, grades)
        keep = small_loss_weights(per_sample, cfg.drop_fraction, eligible=corrected & known)
        weight = batch["sample_weight"].to(per_sample.dtype) * keep * known
        norm = weight.sum().clamp_min(1e-6)
        grade = (per_sample * weight).sum() / norm
        lesion_grade = (self._grade_terms(output.lesion_grade_logits, grades) * weight).sum() / norm
        dice_pairs = None
        if not cfg.partial_dice and "fov" in batch:
            # Fully labelled: every pixel of the field of view has weight (pairs of replayed images included).
            inside = batch["fov"][:, None] > 0
            dice_pairs = ((batch["mask_weights"] > 0) | ~inside).all(dim=-1).all(dim=-1)
        seg = lesion_loss(
            output.lesion_logits,
            batch["masks"],
            batch["mask_weights"],
            gamma=cfg.lesion_focal_gamma,
            pos_weight=1.0,
            dice_pairs=dice_pairs,
        )
        constraint = symmetric_kl(output.grade_logits, output.lesion_grade_logits)
        attention = attention_coverage_loss(output.attention, batch["masks"], batch["mask_weights"])
        total = (
            cfg.lesion_weight * (seg["dice"] + seg["focal"])
            + cfg.grade_weight * grade
            + cfg.lesion_grade_weight * lesion_grade
            + cfg.constraint_weight * constraint
            + cfg.attention_weight * attention
        )
        out = {
            "lesion_dice": seg["dice"],
            "lesion_focal": seg["focal"],
            "grade": grade,
            "lesion_grade": lesion_grade,
            "constraint": constraint,
            "attention": attention,
            "kept": keep[corrected & known].mean() if bool((corrected & known).any()) else keep.mean(),
        }
        if teacher is not None and cfg.consistency_weight > 0:
            consistency = soft_target_kl(output.grade_logits[corrected], teacher.grade_logits[corrected]).mean()
            out["consistency"] = consistency
            total = total + cfg.consistency_weight * consistency
        if teacher is not None and cfg.lesion_consistency_weight > 0 and "fov" in batch:
            lesion_consistency = unlabelled_consistency(
                output.lesion_logits, teacher.lesion_logits, batch["mask_weights"], batch["fov"], corrected
            )
            out["lesion_consistency"] = lesion_consistency
            total = total + cfg.lesion_consistency_weight * lesion_consistency
        out["loss"] = total
        return out


def unlabelled_consistency(
    logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask_weights: torch.Tensor,
    fov: torch.Tensor,
    corrected: torch.Tensor,
) -> torch.Tensor:
    """Mean BCE of the student's lesion maps towards the teacher's probabilities on the unlabelled pixels.

    Unlabelled: inside the field of view of a corrected image, with no weight in ``mask_weights`` (a partial
    correction's untouched pixels, every pixel of a grade-only correction, lesions a full correction left out).
    Their label stays unknown: the term only keeps the maps there where the slowly moving teacher has them, so a
    handful of painted strokes cannot turn into "lesion everywhere". Its gradient is zero where student and teacher
    agree. Args are ``(B, 4, H, W)`` logits and weights, ``(B, H, W)`` fov and ``(B,)`` corrected flags.
    """
    unlabelled = (mask_weights <= 0).to(logits.dtype) * fov[:, None].to(logits.dtype)
    unlabelled = unlabelled * corrected.to(logits.dtype)[:, None, None, None]
    bce = F.binary_cross_entropy_with_logits(logits, torch.sigmoid(teacher_logits), reduction="none")
    return (bce * unlabelled).sum() / unlabelled.sum().clamp_min(1.0)


def finetune(
    model: DRGNet,
    corrections: Dataset,
    replay: Dataset | None,
    cfg: RetrainConfig,
    progress: Progress | None = None,
    healthy: Dataset | None = None,
) -> DRGNet:
    """Fine-tune ``model`` in place on corrected images (plus replay); return the model to evaluate and save.

    That is the EMA teacher when ``cfg.ema_decay`` > 0, else the student itself. ``healthy``: real photographs of
    healthy eyes (a :class:`ReplayDataset`), ``cfg.healthy_per_batch`` of them in every batch.
    """
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    model.to(device).train()
    teacher = EMATeacher(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    task = FeedbackTask(model, cfg, teacher)
    groups = [
        {"params": [p for p in model.encoder_parameters() if p.requires_grad], "lr": cfg.lr * cfg.encoder_lr_scale},
        {"params": [p for p in model.head_parameters() if p.requires_grad], "lr": cfg.lr},
    ]
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    corrected_batches = _forever(corrections, min(cfg.batch_size, len(corrections)), cfg.seed)
    replay_batches = (
        _forever(replay, cfg.replay_per_batch, cfg.seed + 1)
        if replay is not None and cfg.replay_per_batch > 0 and len(replay)
        else None
    )
    healthy_batches = (
        _forever(healthy, cfg.healthy_per_batch, cfg.seed + 2)
        if healthy is not None and cfg.healthy_per_batch > 0 and len(healthy)
        else None
    )
    keys = ("image", "masks", "mask_weights", "fov", "grade", "sample_weight", "soft_grade", "corrected")
    for step in range(cfg.steps):
        batch = next(corrected_batches)
        for extras in (replay_batches, healthy_batches):
            if extras is not None:
                extra = next(extras)
                batch = {k: torch.cat([batch[k], extra[k].to(batch[k].dtype)]) for k in keys}
        batch = {k: batch[k].to(device) for k in keys}
        # A batch norm layer cannot normalise a batch of one image in training mode.
        if batch["image"].shape[0] < 2:
            batch = {k: torch.cat([v, v]) for k, v in batch.items()}
        losses = task(batch)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if teacher is not None:
            teacher.update(model)
        if progress is not None:
            loss = float(losses["loss"].detach())
            progress((step + 1) / max(cfg.steps, 1), f"fine-tuning step {step + 1}/{cfg.steps}: loss {loss:.3f}")
    result = teacher.model if teacher is not None else model
    result.eval()
    return result.cpu()  # type: ignore[return-value]


# -------------------------------------------------------------------------------------------------------- gate


#: What the gate compares on the registered hold-out: (metric, label, which allowed drop applies).
GATED_METRICS = (
    ("qwk", "QWK", "max_qwk_drop"),
    ("lesion_aupr_mean", "mean lesion AUPR", "max_aupr_drop"),
    ("referable_sensitivity", "referable sensitivity", "max_referable_drop"),
    ("referable_specificity", "referable specificity", "max_referable_drop"),
)


def holdout_metrics(
    model: DRGNet,
    sets: Mapping[str, Dataset],
    batch_size: int = 16,
    progress: Progress | None = None,
) -> dict[str, dict[str, Any]]:
    """QWK, accuracy, referable sensitivity / specificity, per-grade confusion, per-lesion and mean AUPR / Dice of
    ``model`` on each hold-out set. ``progress`` is called after every batch (the worker's lease depends on it)."""
    out: dict[str, dict[str, Any]] = {}
    for name, dataset in sets.items():
        loader: Any = DataLoader(dataset, batch_size)
        if progress is not None:
            loader = _reporting(loader, progress, f"evaluating on {name}")
        m = evaluate(model, loader)
        row = {
            k: _finite(m.get(k))
            for k in (
                "qwk",
                "accuracy",
                "referable_auc",
                "referable_sensitivity",
                "referable_specificity",
                "lesion_aupr_mean",
                "lesion_dice_mean",
                "n_images",
            )
        }
        row["confusion"] = m.get("confusion")
        row["lesion_aupr"] = {k: _finite(v.get("aupr")) for k, v in (m.get("lesions") or {}).items()}
        confusion = m.get("confusion") or []
        row["n_healthy"] = int(sum(confusion[0])) if confusion else 0
        out[name] = row
    return out


class _reporting:  # noqa: N801 - used like a function
    """A loader that reports each batch it hands out."""

    def __init__(self, loader: DataLoader, progress: Progress, what: str) -> None:
        self.loader, self.progress, self.what = loader, progress, what

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        n = len(self.loader)
        for i, batch in enumerate(self.loader):
            yield batch
            self.progress((i + 1) / max(n, 1), f"{self.what}: batch {i + 1}/{n}")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON (and the database) refuse NaN
    return value


def gate(
    active: Mapping[str, Mapping[str, Any]],
    candidate: Mapping[str, Mapping[str, Any]],
    max_qwk_drop: float,
    max_aupr_drop: float,
    max_referable_drop: float = 0.02,
    *,
    min_images: int = 1,
    informational: Sequence[str] = (),
) -> tuple[bool, list[str]]:
    """Whether the candidate is not worse than the active version on every gated hold-out set, and why (or why not).

    Fails closed: a gated figure (:data:`GATED_METRICS`) that either model lacks (it could not be computed: no
    grade variety, no lesion pixels, no healthy or no referable photograph) rejects, and so does a hold-out with
    fewer than ``min_images`` photographs or no set at all. Sets named in ``informational`` are reported, never
    decide.
    """
    limits = {"max_qwk_drop": max_qwk_drop, "max_aupr_drop": max_aupr_drop, "max_referable_drop": max_referable_drop}
    gated = [name for name in active if name not in informational]
    if not gated:
        return False, ["no hold-out set to compare on: register one (drgnet model holdout register NAME FOLDER)"]
    ok, reasons = True, []
    for name, before in active.items():
        after = candidate.get(name) or {}
        if name in informational:
            for key, label, _ in GATED_METRICS:
                b, a = before.get(key), after.get(key)
                if b is not None and a is not None:
                    reasons.append(f"{name} (for information, not gated): {label} {b:.3f} -> {a:.3f}")
            continue
        n = before.get("n_images")
        if not isinstance(n, int) or n < min_images:
            ok = False
            reasons.append(f"{name}: {n or 0} photographs, fewer than the minimum of {min_images}: rejected")
        for key, label, limit_name in GATED_METRICS:
            limit = limits[limit_name]
            b, a = before.get(key), after.get(key)
            if b is None or a is None:
                ok = False
                missing = "the active version" if b is None else "the candidate"
                reasons.append(f"{name}: {label} cannot be computed for {missing}: rejected (the gate fails closed)")
            elif b - a > limit + 1e-9:
                ok = False
                reasons.append(f"{name}: {label} {b:.3f} -> {a:.3f} drops more than the allowed {limit}: rejected")
            else:
                reasons.append(f"{name}: {label} {b:.3f} -> {a:.3f}")
    return ok, reasons


# ---------------------------------------------------------------------------------------------- registration


def models_dir(data_dir: str | Path | None = None) -> Path:
    """Where candidate checkpoints live: ``<data dir>/models``."""
    return Path(data_dir if data_dir is not None else default_data_dir()) / MODELS_DIRNAME


def remove_stale_staging(folder: Path, min_age_s: float = 3600.0) -> list[Path]:
    """Delete checkpoint staging folders (``.<name>.*``) a killed worker left behind; return what was removed."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for path in folder.glob(".*"):
        try:
            old = now - path.stat().st_mtime >= min_age_s
        except FileNotFoundError:
            continue
        if path.is_dir() and old:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def resolve_checkpoint(path: str, data_dir: str | Path | None = None) -> Path:
    """A version's checkpoint folder: relative paths are relative to the data directory."""
    p = Path(path)
    return p if p.is_absolute() else Path(data_dir if data_dir is not None else default_data_dir()) / p


def _relative_to_data(path: Path, data_dir: Path) -> str:
    try:
        return path.resolve().relative_to(data_dir.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def register_checkpoint(
    session: Session,
    checkpoint: str | Path,
    name: str,
    *,
    data_dir: str | Path | None = None,
    activate: bool = False,
    replay_data: str = "",
    actor_id: int | None = None,
) -> Any:
    """Register an existing checkpoint folder (e.g. the demo model) as a model version; optionally promote it.

    ``replay_data``: the labelled folder it was trained on, replayed by later retraining (default: the training
    data recorded in the checkpoint, if that folder exists).
    """
    data = Path(data_dir if data_dir is not None else default_data_dir())
    checkpoint = Path(checkpoint)
    _, meta = load_checkpoint(checkpoint)  # validates format, config and weights
    if not replay_data:
        recorded = str((meta.get("train_config") or {}).get("data") or "")
        replay_data = recorded if recorded and Path(recorded).exists() else ""
    version = repository.add_model_version(
        session,
        name,
        _relative_to_data(checkpoint, data),
        sha256_file(checkpoint / WEIGHTS),
        config={"model": meta.get("model"), "replay_data": replay_data},
        metrics=meta.get("metrics") or {},
        actor_id=actor_id,
    )
    if activate:
        repository.promote_model_version(session, version.id, actor_id=actor_id, reason="registered")
    return version


def load_version_model(version: Any, data_dir: str | Path | None = None) -> DRGNet:
    """Load a version's checkpoint, checking its weights against the sha256 the database holds."""
    path = resolve_checkpoint(version.checkpoint_path, data_dir)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise ValueError(f"model version {version.name!r}: checkpoint {path} is missing")
    actual = sha256_file(weights)
    if actual != version.checkpoint_sha256:
        raise ValueError(
            f"model version {version.name!r}: {weights} has sha256 {actual[:12]}..., the database expects "
            f"{version.checkpoint_sha256[:12]}... (replaced or corrupted)"
        )
    model, _ = load_checkpoint(path)
    return model  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------ the whole run


@dataclass(frozen=True)
class _Snapshot:
    id: int
    name: str
    checkpoint_path: str
    checkpoint_sha256: str
    config: dict[str, Any]


def load_corrections(
    session: Session, data_dir: str | Path | None, tolerance_px: int, progress: Progress | None = None
) -> tuple[list[CorrectedImage], dict[int, float]]:
    """Every corrected image of the database with its weak label, and the annotators' reliability weights."""
    labels, weights = collect_weak_labels(session, artifact_store(data_dir), tolerance_px=tolerance_px)
    items = []
    for i, label in enumerate(labels):
        image = session.get(Image, label.image_id)
        array = load_rgb(io.BytesIO(read_image_bytes(image, data_dir)))
        items.append(CorrectedImage(array, label, image.sha256, image.source))
        if progress is not None:
            progress((i + 1) / len(labels), f"reading corrections {i + 1}/{len(labels)}")
    return items, weights


def run_retraining(
    Session: sessionmaker[Session],  # noqa: N803 - the session factory
    params: Mapping[str, Any] | None = None,
    *,
    data_dir: str | Path | None = None,
    base: RetrainConfig | None = None,
    job_tag: str = "",
    progress: Progress | None = None,
    finalize: Callable[[Session, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune the active version on all corrections, gate it and register it (see the module notes).

    Args:
        Session: Session factory; each database step uses its own short transaction.
        params: Overrides of :class:`RetrainConfig` fields (job params).
        data_dir: Data directory (photographs, artifacts, models); default ``$DRGNET_DATA_DIR``.
        base: Configuration the params override (the worker's).
        job_tag: Part of the candidate's name (e.g. ``j12a1``: job 12, attempt 1).
        progress: Called with (fraction 0-1, message).
        finalize: Called inside the registration transaction with the result (the worker completes its job
            there, so the job is done exactly when the version is registered).

    Returns:
        JSON-ready result: version id and name, whether it was promoted, the gate's reasons, metrics, timing.

    Raises:
        ValueError: no active version, no registered hold-out (or one changed since registration), too few
            corrections, a corrupt checkpoint.
    """
    t0 = time.perf_counter()
    report = progress or (lambda f, m: None)
    cfg = RetrainConfig.from_params(params, base)
    data = Path(data_dir if data_dir is not None else default_data_dir())
    report(0.0, "reading corrections")
    with Session() as session:
        active = repository.active_model_version(session)
        if active is None:
            raise ValueError("no model version is active: register one first (drgnet model register CKPT --activate)")
        parent = _Snapshot(
            active.id, active.name, active.checkpoint_path, active.checkpoint_sha256, dict(active.config)
        )
        # Before any costly step: retraining never runs without a frozen hold-out registered in the database.
        holdout_row = holdouts.gate_holdout(session, cfg.holdout)
        holdout_set = holdouts.load_set(session, holdout_row, data)
        holdout_info = {
            "name": holdout_row.name,
            "digest": holdout_row.digest,
            "n_images": holdout_row.n_images,
            "grade_counts": dict(holdout_row.grade_counts),
            "sources": sorted({m.source or "" for m in holdout_set.members} - {""}),
            "healthy_sources": sorted({m.source or "" for m in holdout_set.members if m.grade == 0} - {""}),
        }
        healthy_sets = [
            holdouts.load_set(session, h, data)
            for h in repository.list_holdouts(session, purpose=HoldoutPurpose.HEALTHY_REPLAY)
        ]
        registered = repository.holdout_image_hashes(session)
        items, reliability = load_corrections(
            session, data, cfg.tolerance_px, progress=lambda f, m: report(0.04 * f, m)
        )
    # A photograph of a registered set is never trained on, even when a clinician corrected it in the app.
    items = [c for c in items if c.sha256 not in registered]
    train_items = [c for c in items if not in_correction_holdout(c.sha256, cfg.holdout_fraction)]
    held_items = [c for c in items if in_correction_holdout(c.sha256, cfg.holdout_fraction)]
    if len(train_items) < cfg.min_corrections:
        raise ValueError(
            f"only {len(train_items)} corrected images to train on (need {cfg.min_corrections}); "
            "wait for more corrections"
        )
    model = load_version_model(parent, data)
    size = int(model.config.input_size)
    eval_sets: dict[str, Dataset] = {"holdout": FundusDataset(holdout_set, size, check_fundus=False)}
    if held_items:
        eval_sets["corrections_holdout"] = CorrectionDataset(held_items, size)
    replay_path = cfg.replay_data or str(parent.config.get("replay_data") or "")
    replay = None
    healthy = None
    if cfg.replay_per_batch > 0 and replay_path:
        from drgnet.data.transforms import train_transforms

        replay = ReplayDataset(open_labelled(replay_path, cfg.replay_layout, size, train_transforms(size, "light")))
    healthy_members = [m for h in healthy_sets for m in h.members]
    if cfg.healthy_per_batch > 0 and healthy_members:
        from drgnet.data.transforms import train_transforms

        merged = holdouts.HoldoutSamples(healthy_members, data, "healthy replay")
        healthy = ReplayDataset(FundusDataset(merged, size, train_transforms(size, "light"), check_fundus=False))
    camera_notes = []
    corrected_sources = sorted({c.source for c in train_items if c.source})
    uncovered = [src for src in corrected_sources if src not in holdout_info["healthy_sources"]]
    if uncovered:
        camera_notes.append(
            "the hold-out has no healthy photograph from camera/source "
            + ", ".join(uncovered)
            + " of the corrections: register a hold-out that has (the gate cannot see false referrals there)"
        )

    report(0.05, f"evaluating the active version {parent.name!r}")
    before = holdout_metrics(model, eval_sets, cfg.eval_batch_size, progress=lambda f, m: report(0.05 + 0.05 * f, m))
    t_train = time.perf_counter()
    corrections = CorrectionDataset(train_items, size, flip=cfg.flip, seed=cfg.seed)
    candidate = finetune(
        model, corrections, replay, cfg, progress=lambda f, m: report(0.1 + 0.75 * f, m), healthy=healthy
    )
    train_seconds = time.perf_counter() - t_train
    report(0.88, "evaluating the candidate")
    after = holdout_metrics(candidate, eval_sets, cfg.eval_batch_size, progress=lambda f, m: report(0.88 + 0.06 * f, m))
    passed, reasons = gate(
        before,
        after,
        cfg.max_qwk_drop,
        cfg.max_aupr_drop,
        cfg.max_referable_drop,
        min_images=cfg.min_holdout_images,
        informational=("corrections_holdout",),
    )
    reasons.extend(f"note: {n}" for n in camera_notes)

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name = f"{parent.name.split('+')[0][:60]}+ft-{stamp}" + (f"-{job_tag}" if job_tag else "")
    folder = models_dir(data) / name
    report(0.95, f"saving candidate {name!r}")
    remove_stale_staging(models_dir(data))
    meta = {
        "version_name": name,
        "parent": parent.name,
        "retrain_config": dataclasses.asdict(cfg),
        "train_config": {"data": replay_path},
    }
    save_checkpoint(folder, candidate, candidate.config, metrics={"holdout": after}, extra=meta)  # temp + rename
    sha = sha256_file(folder / WEIGHTS)
    metrics = {
        "holdout": after,
        "parent_holdout": before,
        "holdout_set": holdout_info,
        "gate": {"passed": passed, "reasons": reasons},
        "n_healthy_replay_images": len(healthy_members) if healthy is not None else 0,
        "n_train_images": len(train_items),
        "n_holdout_corrections": len(held_items),
        "annotator_weights": {str(k): round(v, 4) for k, v in reliability.items()},
        "train_seconds": round(train_seconds, 2),
    }
    with Session.begin() as session:
        version = repository.add_model_version(
            session,
            name,
            _relative_to_data(folder, data),
            sha,
            config={
                "model": to_dict(candidate.config),
                "retrain": dataclasses.asdict(cfg),
                "replay_data": replay_path,
            },
            metrics=metrics,
            parent_id=parent.id,
        )
        current = repository.active_model_version(session)
        promote = passed and settings.get(session, settings.AUTO_PROMOTE)
        if passed and (current is None or current.id != parent.id):
            passed = promote = False
            reasons.append("the active version changed while retraining; rejected, retrain from the new one")
        if promote:
            reasons.append("automatic promotion is switched on (setting auto_promote)")
            repository.promote_model_version(session, version.id, reason="; ".join(reasons))
            status = ModelStatus.ACTIVE
        elif passed:
            # A person decides: the candidate serves nobody until an admin approves it (Models page).
            repository.set_model_version_status(
                session, version.id, ModelStatus.AWAITING_APPROVAL, reason="; ".join(reasons)
            )
            status = ModelStatus.AWAITING_APPROVAL
        else:
            repository.set_model_version_status(session, version.id, ModelStatus.REJECTED, reason="; ".join(reasons))
            status = ModelStatus.REJECTED
        result = {
            "version_id": version.id,
            "version": name,
            "parent": parent.name,
            "status": status.value,
            "gate_passed": passed,
            "promoted": promote,
            "reasons": reasons,
            "metrics": metrics,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        if finalize is not None:
            finalize(session, result)
    report(1.0, f"{status.value}: {name}")
    return result


__all__ = [
    "JOB_KIND",
    "CorrectedImage",
    "CorrectionDataset",
    "EMATeacher",
    "FeedbackTask",
    "ReplayDataset",
    "RetrainConfig",
    "finetune",
    "gate",
    "holdout_metrics",
    "in_correction_holdout",
    "load_corrections",
    "load_version_model",
    "models_dir",
    "register_checkpoint",
    "remove_stale_staging",
    "resolve_checkpoint",
    "run_retraining",
]
