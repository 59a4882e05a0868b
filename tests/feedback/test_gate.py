"""The hold-out gate: it fails closed, it judges on a frozen hold-out registered in the database, a worse candidate
is kept as rejected with its metrics, and a not-worse one waits for an admin (or is promoted when an admin switched
automatic promotion on)."""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path

import pytest
import torch
from _support_feedback import FAST_RETRAIN, CorrectedDB, register_holdout

from db import repository
from db.models import ModelStatus
from feedback import retrain, settings
from feedback.retrain import RetrainConfig, gate, run_retraining

PARAMS = {"steps": 0, "holdout_fraction": 0.0, "replay_per_batch": 0, "eval_batch_size": 12, "min_holdout_images": 5}
GOOD = {"qwk": 0.80, "lesion_aupr_mean": 0.50, "referable_sensitivity": 0.9, "referable_specificity": 0.9}


def _set(**values: object) -> dict[str, object]:
    return {**GOOD, "n_images": 60, **values}


def test_gate_rule() -> None:
    before = {"h": _set()}
    assert gate(before, {"h": _set(qwk=0.79, lesion_aupr_mean=0.49)}, 0.02, 0.02)[0]
    ok, reasons = gate(before, {"h": _set(qwk=0.70, lesion_aupr_mean=0.60)}, 0.02, 0.02)
    assert not ok and any("QWK 0.800 -> 0.700" in r for r in reasons)
    assert not gate(before, {"h": _set(lesion_aupr_mean=None)}, 0.02, 0.02)[0]
    assert not gate({}, {}, 0.02, 0.02)[0]


def test_gate_fails_closed_when_a_metric_cannot_be_computed() -> None:
    # Issue 16: this returned (True, []) -- nothing could be compared, and the candidate was promoted.
    ok, reasons = gate({"h": {"qwk": None}}, {"h": {}}, 0.02, 0.02)
    assert ok is False and any("cannot be computed" in r for r in reasons)
    # Missing for the active version only (e.g. no lesion pixels in the hold-out): still a rejection.
    ok, reasons = gate({"h": _set(lesion_aupr_mean=None)}, {"h": _set()}, 0.02, 0.02)
    assert not ok and any("mean lesion AUPR cannot be computed for the active version" in r for r in reasons)
    # Only an informational set (the correction slice): nothing independent judged, so rejected.
    assert not gate({"c": _set()}, {"c": _set()}, 0.02, 0.02, informational=("c",))[0]


def test_gate_rejects_a_referable_sensitivity_or_specificity_drop_and_a_small_holdout() -> None:
    before = {"h": _set()}
    ok, reasons = gate(before, {"h": _set(referable_specificity=0.85)}, 0.02, 0.02, 0.02)
    assert not ok and any("referable specificity 0.900 -> 0.850 drops" in r for r in reasons)
    ok, reasons = gate(before, {"h": _set(referable_sensitivity=0.87)}, 0.02, 0.02, 0.02)
    assert not ok and any("referable sensitivity 0.900 -> 0.870" in r for r in reasons)
    assert gate(before, {"h": _set(referable_specificity=0.89)}, 0.02, 0.02, 0.02)[0]
    # A hold-out below the configured minimum (default 50 photographs) rejects even an identical candidate.
    small = {"h": _set(n_images=49)}
    ok, reasons = gate(small, small, 0.02, 0.02, 0.02, min_images=RetrainConfig().min_holdout_images)
    assert RetrainConfig().min_holdout_images == 50
    assert not ok and any("49 photographs, fewer than the minimum of 50" in r for r in reasons)
    assert RetrainConfig().max_referable_drop == 0.02


def test_retraining_refuses_to_run_without_a_registered_holdout(sqlite_corrected_db: CorrectedDB) -> None:
    db = sqlite_corrected_db
    with pytest.raises(ValueError, match="no frozen hold-out is registered"):
        run_retraining(db.Session, PARAMS, data_dir=db.data_dir)
    with pytest.raises(ValueError, match="register the folder"):
        RetrainConfig.from_params({"holdout_data": "/some/folder"})
    with db.Session() as s:
        assert [v.id for v in repository.list_model_versions(s)] == [db.version_id]


def _always(model: torch.nn.Module, grade: int) -> torch.nn.Module:
    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        model.grade_head[-1].bias.add_(torch.nn.functional.one_hot(torch.tensor(grade), 5).float() * 100.0)
    return model


def test_worse_candidate_is_rejected_and_kept_with_metrics(
    corrected_db: CorrectedDB, holdout_cohort: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = corrected_db
    register_holdout(db.Session, holdout_cohort, db.data_dir)

    def never_referable(model, corrections, replay, cfg, progress=None, healthy=None):
        return _always(model, 0)  # misses every referable eye

    monkeypatch.setattr(retrain.run, "finetune", never_referable)
    result = run_retraining(db.Session, PARAMS, data_dir=db.data_dir)
    assert result["promoted"] is False and result["status"] == "rejected"
    with db.Session() as s:
        assert repository.active_model_version(s).id == db.version_id
        rejected = repository.get_model_version(s, result["version_id"])
        assert rejected.status is ModelStatus.REJECTED
        before, after = rejected.metrics["parent_holdout"]["holdout"], rejected.metrics["holdout"]["holdout"]
        assert before["referable_sensitivity"] == 1.0 and after["referable_sensitivity"] == 0.0
        assert rejected.metrics["gate"]["passed"] is False
        assert any("referable sensitivity 1.000 -> 0.000 drops" in r for r in rejected.metrics["gate"]["reasons"])
        assert rejected.metrics["holdout_set"]["name"] == "holdout-1"
        assert rejected.metrics["holdout_set"]["n_images"] == 10
        assert (db.data_dir / rejected.checkpoint_path / "model.safetensors").is_file()


def test_not_worse_candidate_waits_for_approval_unless_auto_promotion_is_on(
    sqlite_corrected_db: CorrectedDB, holdout_cohort: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = sqlite_corrected_db
    register_holdout(db.Session, holdout_cohort, db.data_dir)

    class _OneSecond(datetime):  # both runs below start "in the same second": their names must still differ
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 12, 7, 2, 5, 23, tzinfo=tz)

    monkeypatch.setattr("feedback.retrain.run.datetime", _OneSecond)
    # No step: the EMA teacher is the active model's exact copy, so it is "not worse" by any margin.
    result = run_retraining(db.Session, PARAMS, data_dir=db.data_dir)
    assert result["gate_passed"] is True, result["reasons"]
    assert result["promoted"] is False and result["status"] == "awaiting-approval"
    with db.Session() as s:
        assert repository.active_model_version(s).id == db.version_id
        waiting = repository.get_model_version(s, result["version_id"])
        assert waiting.status is ModelStatus.AWAITING_APPROVAL
        with pytest.raises(ValueError, match="awaits an admin's approval"):
            repository.promote_model_version(s, waiting.id)

    with db.Session.begin() as s:
        settings.change(s, settings.AUTO_PROMOTE, True, actor_id=db.admin_id)
    first_name = waiting.name
    result = run_retraining(db.Session, PARAMS, data_dir=db.data_dir)
    assert result["promoted"] is True and result["status"] == "active"
    with db.Session() as s:
        assert repository.active_model_version(s).id == result["version_id"]
        assert repository.active_model_version(s).name == f"{first_name}-2"
        (change,) = repository.audit_entries(s, action="setting.change")
        assert change.user_id == db.admin_id and change.details == {"key": "auto_promote", "from": None, "to": True}


def test_fast_params_pass_through_the_gate_with_computable_metrics(
    sqlite_corrected_db: CorrectedDB, holdout_cohort: Path
) -> None:
    db = sqlite_corrected_db
    register_holdout(db.Session, holdout_cohort, db.data_dir)
    result = run_retraining(db.Session, FAST_RETRAIN, data_dir=db.data_dir)
    held = result["metrics"]["holdout"]["holdout"]
    for key in ("qwk", "lesion_aupr_mean", "referable_sensitivity", "referable_specificity"):
        assert held[key] is not None, key
    assert (
        held["n_healthy"] == 4
        and len(held["confusion"]) == 5
        and set(held["lesion_aupr"])
        == {
            "MA",
            "HE",
            "EX",
            "SE",
        }
    )
