"""The hold-out gate: a worse candidate is kept as rejected with its metrics, a not-worse one is promoted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fb_support import TINY, CorrectedDB

from db import repository
from db.models import ModelStatus
from drgnet.config import ModelConfig
from drgnet.model import DRGNet
from feedback import retrain
from feedback.retrain import gate, run_retraining

PARAMS = {"steps": 0, "holdout_fraction": 0.0, "replay_per_batch": 0, "eval_batch_size": 12}


def test_gate_rule() -> None:
    before = {"h": {"qwk": 0.80, "lesion_aupr_mean": 0.50}}
    assert gate(before, {"h": {"qwk": 0.79, "lesion_aupr_mean": 0.49}}, 0.02, 0.02)[0]
    ok, reasons = gate(before, {"h": {"qwk": 0.70, "lesion_aupr_mean": 0.60}}, 0.02, 0.02)
    assert not ok and any("QWK 0.800 -> 0.700" in r for r in reasons)
    assert not gate(before, {"h": {"qwk": 0.80, "lesion_aupr_mean": None}}, 0.02, 0.02)[0]
    assert gate({"h": {"qwk": None, "lesion_aupr_mean": 0.5}}, {"h": {"qwk": None, "lesion_aupr_mean": 0.5}}, 0, 0)[0]
    assert not gate({}, {}, 0.02, 0.02)[0]


def test_random_weights_candidate_is_rejected_and_kept_with_metrics(
    sqlite_corrected_db: CorrectedDB, self_labelled_holdout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = sqlite_corrected_db

    def random_weights(model, corrections, replay, cfg, progress=None):
        torch.manual_seed(123)
        return DRGNet(ModelConfig(**TINY)).eval()

    monkeypatch.setattr(retrain, "finetune", random_weights)
    result = run_retraining(db.Session, {**PARAMS, "holdout_data": str(self_labelled_holdout)}, data_dir=db.data_dir)
    assert result["promoted"] is False
    with db.Session() as s:
        assert repository.active_model_version(s).id == db.version_id
        rejected = repository.get_model_version(s, result["version_id"])
        assert rejected.status is ModelStatus.REJECTED
        assert rejected.metrics["holdout"]["holdout"]["qwk"] is not None
        assert rejected.metrics["parent_holdout"]["holdout"]["lesion_aupr_mean"] > 0.5
        assert rejected.metrics["gate"]["passed"] is False
        assert (db.data_dir / rejected.checkpoint_path / "model.safetensors").is_file()


def test_not_worse_candidate_is_promoted_under_default_margins(
    sqlite_corrected_db: CorrectedDB, self_labelled_holdout: Path
) -> None:
    db = sqlite_corrected_db
    # No step: the EMA teacher is the active model's exact copy, so it is "not worse" by any margin.
    result = run_retraining(db.Session, {**PARAMS, "holdout_data": str(self_labelled_holdout)}, data_dir=db.data_dir)
    assert result["promoted"] is True, result["reasons"]
    with db.Session() as s:
        assert repository.active_model_version(s).id == result["version_id"]
