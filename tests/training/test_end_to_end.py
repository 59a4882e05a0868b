"""A tiny end-to-end run: synthetic cohort -> train -> eval -> predict, through the CLI and the Python API."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from drgnet.cli import app
from drgnet.data import synthetic
from drgnet.inference import Predictor, render_overlay
from drgnet.labels import LESIONS
from drgnet.training.pipeline import train
from drgnet.training.presets import get_preset

runner = CliRunner()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    synthetic.generate_cohort(out, n=24, size=128, seed=3, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def trained(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = runner.invoke(app, ["train", "--preset", "tiny", "--data", str(cohort), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_best_and_last_checkpoints_and_test_metrics(trained):
    for name in ("best", "last"):
        assert (trained / name / "model.safetensors").is_file()
        assert (trained / name / "checkpoint.json").is_file()
    assert (trained / "last" / "optimizer.safetensors").is_file()
    history = json.loads((trained / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    assert {"loss", "grade", "lesion_dice", "constraint"} <= set(history[0]["train"])
    test = json.loads((trained / "test_metrics.json").read_text())
    assert {"qwk", "accuracy", "referable_auc", "lesions"} <= set(test)


def test_eval_reports_metrics_and_writes_confusion_png(trained, cohort, tmp_path):
    result = runner.invoke(
        app,
        [
            "eval",
            "--checkpoint",
            str(trained / "best"),
            "--data",
            str(cohort),
            "--split",
            "test",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "QWK" in result.output and "referable DR" in result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n"] == metrics["n_images"] > 0
    assert set(metrics["lesions"]) == set(LESIONS)
    assert (tmp_path / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_predict_json_has_grade_probs_and_lesion_summaries(trained, cohort, tmp_path):
    images = sorted((cohort / synthetic.IMAGE_DIR).glob("*.jpg"))[:2]
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    result = runner.invoke(
        app,
        [
            "predict",
            *map(str, images),
            str(bad),
            "--checkpoint",
            str(trained / "best"),
            "--json",
            "--overlay",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1  # one bad file
    lines = [json.loads(line) for line in result.output.strip().splitlines()]
    good = [line for line in lines if "error" not in line]
    assert len(good) == 2
    for obj in good:
        assert obj["grade"] in range(5)
        assert len(obj["probs"]) == 5 and abs(sum(obj["probs"]) - 1) < 1e-4
        for name in LESIONS:
            assert 0 <= obj["lesions"][name]["area_fraction"] <= 1
            assert obj["lesions"][name]["count"] >= 0
    error = next(line for line in lines if "error" in line)
    assert "notes.txt" in error["error"]
    assert len(list(tmp_path.glob("*_overlay.png"))) == 2


def test_predictor_maps_back_to_the_original_photograph(trained):
    from skimage.data import retina

    image = retina()
    pred = Predictor.from_checkpoint(trained / "best").predict(image, source="retina")
    assert pred.lesion_probs.shape == (4, *image.shape[:2])
    assert pred.attention.shape == image.shape[:2]
    assert pred.attention.min() >= 0 and pred.attention.max() <= 1
    assert pred.attention[~pred.fov_mask].max() == 0  # nothing outside the field of view
    drawn = render_overlay(image, pred.lesion_probs, pred.attention, opacity=0.5)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8


def test_resume_continues_where_it_stopped_and_training_is_seeded(cohort, tmp_path):
    cfg = dataclasses.replace(get_preset("tiny"), data=str(cohort), epochs=1)
    train(cfg, tmp_path / "a", progress=False, log=lambda _: None)
    train(cfg, tmp_path / "b", progress=False, log=lambda _: None)
    wa = load_file(str(tmp_path / "a" / "last" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "last" / "model.safetensors"))
    assert all(np.array_equal(wa[k].numpy(), wb[k].numpy()) for k in wa)

    logs = []
    train(dataclasses.replace(cfg, epochs=2), tmp_path / "a", resume=True, progress=False, log=logs.append)
    assert any("resuming" in line for line in logs)
    history = json.loads((tmp_path / "a" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]


def test_adapt_to_a_new_camera_writes_a_loadable_checkpoint_and_lowers_target_entropy(trained, cohort, tmp_path):
    target = tmp_path / "clinic"
    synthetic.generate_cohort(target, n=8, size=128, style="smartphone", seed=11, workers=1, progress=False)
    photos = target / synthetic.IMAGE_DIR  # just the photographs: no labels are used
    out = tmp_path / "adapted"
    result = runner.invoke(
        app,
        [
            "adapt",
            "--checkpoint", str(trained / "best"),
            "--source", str(cohort),
            "--target-images", str(photos),
            "--out", str(out),
            "--set", "steps=8",
            "--set", "batch_size=4",
            "--set", "lr=1e-3",
            "--set", "entropy_weight=1.0",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["target_entropy_after"] < metrics["target_entropy_before"]
    assert {"wasserstein", "entropy", "adversarial", "discriminator"} <= set(metrics["final_losses"])
    pred = Predictor.from_checkpoint(out).predict(sorted(photos.glob("*.jpg"))[0])
    assert pred.grade in range(5)
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["adapted_from"] == str(trained / "best")
