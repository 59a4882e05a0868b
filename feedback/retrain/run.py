"""One retraining run from the database to a registered candidate (what the worker does for a ``retrain`` job)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from torch.utils.data import Dataset

from db import repository
from db.engine import data_dir as default_data_dir
from db.models import HoldoutPurpose, ModelStatus
from drgnet.config import to_dict
from drgnet.data.transforms import train_transforms
from drgnet.model import DRGNet
from drgnet.model.checkpoint import WEIGHTS, save_checkpoint, sha256_file
from drgnet.training.data import FundusDataset
from feedback import holdouts, settings
from feedback.retrain.config import RetrainConfig
from feedback.retrain.data import (
    CorrectedImage,
    CorrectionDataset,
    ReplayDataset,
    in_correction_holdout,
    load_corrections,
    open_labelled,
)
from feedback.retrain.gate import gate, holdout_metrics
from feedback.retrain.registration import (
    load_version_model,
    models_dir,
    relative_to_data,
    remove_stale_staging,
)
from feedback.retrain.task import finetune

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class _Snapshot:
    """The active version as it was when the run started (the session that read it is closed by then)."""

    id: int
    name: str
    checkpoint_path: str
    checkpoint_sha256: str
    config: dict[str, Any]


@dataclass
class _Inputs:
    """Everything a run reads from the database, in one short transaction."""

    parent: _Snapshot
    holdout_set: holdouts.HoldoutSamples
    holdout_info: dict[str, Any]
    healthy_members: list[Any]
    train_items: list[CorrectedImage]
    held_items: list[CorrectedImage]
    reliability: dict[int, float]


def _holdout_info(row: Any, members: list[Any]) -> dict[str, Any]:
    return {
        "name": row.name,
        "digest": row.digest,
        "n_images": row.n_images,
        "grade_counts": dict(row.grade_counts),
        "sources": sorted({m.source or "" for m in members} - {""}),
        "healthy_sources": sorted({m.source or "" for m in members if m.grade == 0} - {""}),
    }


def _read_inputs(Session: sessionmaker[Session], cfg: RetrainConfig, data: Path, report: Progress) -> _Inputs:  # noqa: N803
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
    held = [in_correction_holdout(c.sha256, cfg.holdout_fraction) for c in items]
    return _Inputs(
        parent,
        holdout_set,
        _holdout_info(holdout_row, holdout_set.members),
        [m for h in healthy_sets for m in h.members],
        [c for c, h in zip(items, held, strict=True) if not h],
        [c for c, h in zip(items, held, strict=True) if h],
        reliability,
    )


def _eval_sets(inputs: _Inputs, model: DRGNet) -> dict[str, Dataset]:
    """The registered hold-out (gated) and the correction hold-out (reported) at the model's input size."""
    size = int(model.config.input_size)
    sets: dict[str, Dataset] = {"holdout": FundusDataset(inputs.holdout_set, size, check_fundus=False)}
    if inputs.held_items:
        sets["corrections_holdout"] = CorrectionDataset(inputs.held_items, size)
    return sets


def _replay_sets(
    cfg: RetrainConfig, inputs: _Inputs, model: DRGNet, data: Path
) -> tuple[str, Dataset | None, Dataset | None]:
    """The replay folder's path, its dataset and the healthy replay dataset (None where switched off or absent)."""
    size = int(model.config.input_size)
    replay_path = cfg.replay_data or str(inputs.parent.config.get("replay_data") or "")
    replay = None
    if cfg.replay_per_batch > 0 and replay_path:
        replay = ReplayDataset(open_labelled(replay_path, cfg.replay_layout, size, train_transforms(size, "light")))
    healthy = None
    if cfg.healthy_per_batch > 0 and inputs.healthy_members:
        merged = holdouts.HoldoutSamples(inputs.healthy_members, data, "healthy replay")
        healthy = ReplayDataset(FundusDataset(merged, size, train_transforms(size, "light"), check_fundus=False))
    return replay_path, replay, healthy


def _camera_notes(inputs: _Inputs) -> list[str]:
    corrected_sources = sorted({c.source for c in inputs.train_items if c.source})
    uncovered = [src for src in corrected_sources if src not in inputs.holdout_info["healthy_sources"]]
    if not uncovered:
        return []
    return [
        "the hold-out has no healthy photograph from camera/source "
        + ", ".join(uncovered)
        + " of the corrections: register a hold-out that has (the gate cannot see false referrals there)"
    ]


def _decide(session: Session, version_id: int, parent_id: int, passed: bool, reasons: list[str]) -> tuple[Any, bool]:
    """Set the candidate's status in the registration transaction; returns (status, promoted)."""
    current = repository.active_model_version(session)
    promote = passed and settings.get(session, settings.AUTO_PROMOTE)
    if passed and (current is None or current.id != parent_id):
        passed = promote = False
        reasons.append("the active version changed while retraining; rejected, retrain from the new one")
    if promote:
        reasons.append("automatic promotion is switched on (setting auto_promote)")
        repository.promote_model_version(session, version_id, reason="; ".join(reasons))
        return ModelStatus.ACTIVE, True
    # A person decides: a passing candidate serves nobody until an admin approves it (Models page).
    status = ModelStatus.AWAITING_APPROVAL if passed else ModelStatus.REJECTED
    repository.set_model_version_status(session, version_id, status, reason="; ".join(reasons))
    return status, False


def _register(
    Session: sessionmaker[Session],  # noqa: N803
    candidate: DRGNet,
    cfg: RetrainConfig,
    parent: _Snapshot,
    folder: Path,
    data: Path,
    replay_path: str,
    metrics: dict[str, Any],
    finalize: Callable[[Session, dict[str, Any]], None] | None,
    t0: float,
) -> dict[str, Any]:
    """Register the saved candidate with its gate report in ONE transaction (the caller completes its job there)."""
    gate_report = metrics["gate"]
    with Session.begin() as session:
        version = repository.add_model_version(
            session,
            folder.name,
            relative_to_data(folder, data),
            sha256_file(folder / WEIGHTS),
            config={"model": to_dict(candidate.config), "retrain": to_dict(cfg), "replay_data": replay_path},
            metrics=metrics,
            parent_id=parent.id,
        )
        status, promoted = _decide(session, version.id, parent.id, gate_report["passed"], gate_report["reasons"])
        result = {
            "version_id": version.id,
            "version": folder.name,
            "parent": parent.name,
            "status": status.value,
            "gate_passed": status is not ModelStatus.REJECTED,
            "promoted": promoted,
            "reasons": gate_report["reasons"],
            "metrics": metrics,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        if finalize is not None:
            finalize(session, result)
    return result


def _save_candidate(
    folder: Path,
    candidate: DRGNet,
    cfg: RetrainConfig,
    parent: _Snapshot,
    replay_path: str,
    holdout: dict[str, Any],
    data: Path,
) -> None:
    """Write the candidate's checkpoint (built beside ``folder`` and renamed: never half-written)."""
    remove_stale_staging(models_dir(data))
    meta = {
        "version_name": folder.name,
        "parent": parent.name,
        "retrain_config": dataclasses.asdict(cfg),
        "train_config": {"data": replay_path},
    }
    save_checkpoint(folder, candidate, candidate.config, metrics={"holdout": holdout}, extra=meta)


def _candidate_name(Session: sessionmaker[Session], parent: _Snapshot, job_tag: str, models: Path) -> str:  # noqa: N803
    """A version name no other version or checkpoint folder has: two runs from one parent can start in one second."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base = f"{parent.name.split('+')[0][:60]}+ft-{stamp}" + (f"-{job_tag}" if job_tag else "")
    name, n = base, 1
    with Session() as s:
        while (models / name).exists() or repository.get_model_version_by_name(s, name) is not None:
            n += 1
            name = f"{base}-{n}"
    return name


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
    """Fine-tune the active version on all corrections, gate it and register it (see :mod:`feedback.retrain`).

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
    inputs = _read_inputs(Session, cfg, data, report)
    if len(inputs.train_items) < cfg.min_corrections:
        raise ValueError(
            f"only {len(inputs.train_items)} corrected images to train on (need {cfg.min_corrections}); "
            "wait for more corrections"
        )
    model = load_version_model(inputs.parent, data)
    eval_sets = _eval_sets(inputs, model)
    replay_path, replay, healthy = _replay_sets(cfg, inputs, model, data)
    size = int(model.config.input_size)

    report(0.05, f"evaluating the active version {inputs.parent.name!r}")
    before = holdout_metrics(model, eval_sets, cfg.eval_batch_size, progress=lambda f, m: report(0.05 + 0.05 * f, m))
    t_train = time.perf_counter()
    corrections = CorrectionDataset(inputs.train_items, size, flip=cfg.flip, seed=cfg.seed)
    candidate = finetune(model, corrections, replay, cfg, lambda f, m: report(0.1 + 0.75 * f, m), healthy=healthy)
    train_seconds = time.perf_counter() - t_train
    report(0.88, "evaluating the candidate")
    after = holdout_metrics(candidate, eval_sets, cfg.eval_batch_size, progress=lambda f, m: report(0.88 + 0.06 * f, m))
    limits = (cfg.max_qwk_drop, cfg.max_aupr_drop, cfg.max_referable_drop)
    passed, reasons = gate(
        before, after, *limits, min_images=cfg.min_holdout_images, informational=("corrections_holdout",)
    )
    reasons.extend(f"note: {n}" for n in _camera_notes(inputs))

    folder = models_dir(data) / _candidate_name(Session, inputs.parent, job_tag, models_dir(data))
    report(0.95, f"saving candidate {folder.name!r}")
    _save_candidate(folder, candidate, cfg, inputs.parent, replay_path, after, data)
    metrics = {
        "holdout": after,
        "parent_holdout": before,
        "holdout_set": inputs.holdout_info,
        "gate": {"passed": passed, "reasons": reasons},
        "n_healthy_replay_images": len(inputs.healthy_members) if healthy is not None else 0,
        "n_train_images": len(inputs.train_items),
        "n_holdout_corrections": len(inputs.held_items),
        "annotator_weights": {str(k): round(v, 4) for k, v in inputs.reliability.items()},
        "train_seconds": round(train_seconds, 2),
    }
    result = _register(Session, candidate, cfg, inputs.parent, folder, data, replay_path, metrics, finalize, t0)
    report(1.0, f"{result['status']}: {folder.name}")
    return result
