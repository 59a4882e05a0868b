"""``drgnet bench real-model``: a trained checkpoint scored as it is on real photographs, with what it trained on."""

from __future__ import annotations

import json

import cv2
import numpy as np
from typer.testing import CliRunner

from drgnet.bench import real_model
from drgnet.cli import app
from drgnet.data import Sample
from drgnet.data.preprocess import preprocess_sample
from drgnet.data.synthetic import generate_fundus

runner = CliRunner()


def _sample(grade: int, seed: int, name: str, masks: bool) -> Sample:
    f = generate_fundus(grade, size=160, seed=seed)
    if not masks:
        return Sample(f.image, name, "real-healthy", grade=grade)
    return Sample(f.image, name, "idrid", masks=f.masks, lesion_known=(True,) * 4)


def test_trained_on_reads_the_mixed_sources_and_their_hold_outs():
    meta = {
        "train_config": {
            "mix": [
                {"data": "idrid-train4", "exclude": []},
                {"data": "real-healthy", "exclude": ["DRIVE_40"]},
            ]
        }
    }
    assert real_model.trained_on(meta, ["DRIVE_22", "DRIVE_40"]) == (True, {"DRIVE_22"})
    assert real_model.trained_on({"train_config": {"mix": []}}, ["DRIVE_22"]) == (False, set())


def test_a_checkpoint_gets_its_row_of_aupr_grades_and_speed(tiny_checkpoint, tmp_path, monkeypatch):
    photo = tmp_path / "IDRiD_01.png"
    lesion_photo = _sample(3, 1, "IDRiD_01", masks=True)
    cv2.imwrite(str(photo), cv2.cvtColor(lesion_photo.image, cv2.COLOR_RGB2BGR))
    data = {
        "idrid": [preprocess_sample(lesion_photo, real_model.SCORE_SIDE)],
        "idrid_paths": [photo],
        "healthy": [_sample(0, 2, "DRIVE_22", masks=False), _sample(0, 3, "DRIVE_40", masks=False)],
        "dr": [_sample(3, 4, "HRF_07_dr", masks=False)],
    }
    monkeypatch.setattr(real_model, "load_real", lambda log: data)
    result = runner.invoke(app, ["bench", "real-model", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads((tmp_path / "real-model.json").read_text())
    assert set(row["grades"]["healthy"]) == {"DRIVE_22", "DRIVE_40"} and row["healthy_in_training"] == []
    assert 0 <= row["grades"]["dr"]["HRF_07_dr"] <= 4 and not row["idrid_in_training"]
    assert 0.0 < row["aupr"]["EX"] <= 1.0 and np.isfinite(row["cpu_seconds_per_12mp"])
    assert "HRF_07_dr" in (tmp_path / "real-model.md").read_text()
