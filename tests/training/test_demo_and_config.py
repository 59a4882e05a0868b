"""The demo model is cached and reused; training configs load from JSON with clear errors."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from typer.testing import CliRunner

from drgnet.cli import app
from drgnet.config import TrainConfig, from_dict, load_train_config, to_dict
from drgnet.model import DRGNet
from drgnet.model.checkpoint import save_checkpoint
from drgnet.training import demo
from drgnet.training.presets import get_preset

runner = CliRunner()


def test_demo_model_is_trained_once_then_reused_and_retrained_when_the_recipe_changes(tmp_path, monkeypatch):
    recipe = {
        "cohort": {"n": 16, "size": 128, "style": "default", "seed": 1},
        "preset": "tiny",
        "epochs": 1,
        "max_steps_per_epoch": 2,
    }
    monkeypatch.setattr(demo, "RECIPE", recipe)
    logs: list[str] = []
    ckpt, metrics = demo.train_demo_model(tmp_path, log=logs.append)
    assert (ckpt / "model.safetensors").is_file() and "qwk" in metrics
    assert (tmp_path / "demo-cohort" / "preview.png").is_file()
    assert any("training the demo model" in line for line in logs)

    logs.clear()
    again, _ = demo.train_demo_model(tmp_path, log=logs.append)
    assert again == ckpt and any("reusing cached demo model" in line for line in logs)

    monkeypatch.setattr(demo, "RECIPE", {**recipe, "epochs": 2})
    logs.clear()
    demo.train_demo_model(tmp_path, log=logs.append)
    assert any("recipe changed" in line for line in logs)


def test_demo_without_retrain_trains_nothing_and_serves_the_base_model(tmp_path, monkeypatch, tiny_checkpoint):
    import drgnet.base_model

    def no_training(*args, **kwargs):
        raise AssertionError("the demo trained without --retrain")

    monkeypatch.setattr(demo, "train", no_training)
    monkeypatch.setattr(drgnet.base_model, "BASE_MODEL_DIR", tiny_checkpoint)
    monkeypatch.setattr(demo, "PHOTOS", {"n": 2, "size": 96, "style": "default", "seed": 3})
    result = runner.invoke(app, ["demo", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"demo model (drgnet-base): {tiny_checkpoint}" in result.output
    assert len(list((tmp_path / "demo-photos" / demo.IMAGES).glob("*.jpg"))) == 2
    assert not (tmp_path / "demo-model").exists()

    monkeypatch.setattr(drgnet.base_model, "BASE_MODEL_DIR", tmp_path / "no-model")
    missing = runner.invoke(app, ["demo", "--data-dir", str(tmp_path)])
    assert missing.exit_code == 2 and "no-model lacks checkpoint.json" in missing.output


def test_demo_cache_key_names_the_generator_revision(monkeypatch):
    # Another generator revision paints other photographs from the same seeds: the cached model must not be reused.
    from drgnet.data import synthetic

    before = demo._recipe_key()
    assert before["generator"] == synthetic.GENERATOR_REVISION
    monkeypatch.setattr(synthetic, "GENERATOR_REVISION", "v2.test")
    assert demo._recipe_key() != before


def test_a_demo_cohort_from_another_generator_revision_is_redrawn(tmp_path, monkeypatch):
    from drgnet.data import synthetic

    wanted = {"n": 16, "size": 128, "style": "default", "seed": 1}
    manifest = tmp_path / "manifest.json"
    assert not demo.cohort_is_current(manifest, wanted)  # no cohort yet
    manifest.write_text(json.dumps({**wanted, "generator_revision": synthetic.GENERATOR_REVISION}))
    assert demo.cohort_is_current(manifest, wanted)
    assert not demo.cohort_is_current(manifest, {**wanted, "seed": 2})
    monkeypatch.setattr(synthetic, "GENERATOR_REVISION", "v2.test")
    assert not demo.cohort_is_current(manifest, wanted)


def test_train_config_round_trips_through_json_and_rejects_unknown_fields(tmp_path):
    cfg = dataclasses.replace(get_preset("tiny"), data="somewhere")
    assert from_dict(TrainConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
    bad = to_dict(cfg)
    bad["model"]["attention_heads"] = 4
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"bad.json: ModelConfig: unknown field\(s\) attention_heads"):
        load_train_config(path)
    result = runner.invoke(app, ["train", "--config", str(path)])
    assert result.exit_code == 2 and "attention_heads" in result.output


def test_train_from_a_config_file(tmp_path):
    from drgnet.data import synthetic

    cohort = tmp_path / "cohort"
    synthetic.generate_cohort(cohort, n=16, size=128, seed=2, workers=1, progress=False)
    cfg = dataclasses.replace(get_preset("tiny"), data=str(cohort), epochs=1, max_steps_per_epoch=2)
    path = tmp_path / "train.json"
    path.write_text(json.dumps(to_dict(cfg)))
    result = runner.invoke(app, ["train", "--config", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "run" / "best" / "checkpoint.json").read_text())
    assert meta["model"] == to_dict(cfg.model)
    assert meta["train_config"]["data"] == str(cohort)


def test_other_encoders_and_local_encoder_weights(tmp_path, tiny_config):
    torch.manual_seed(0)
    cfg = dataclasses.replace(tiny_config, encoder="resnet18")
    source = DRGNet(cfg)
    assert source(torch.rand(1, 3, 64, 64)).grade_logits.shape == (1, 5)
    save_checkpoint(tmp_path / "ckpt", source, cfg)
    warm = DRGNet(dataclasses.replace(cfg, encoder_weights=str(tmp_path / "ckpt")))
    for (name, a), (_, b) in zip(source.encoder.state_dict().items(), warm.encoder.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="cannot read encoder weights"):
        DRGNet(dataclasses.replace(cfg, encoder_weights=str(tmp_path / "missing.safetensors")))
