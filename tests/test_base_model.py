"""The shipped base model (models/drgnet-base): its card names the committed weights, it loads without pickle, and
``drgnet predict`` uses it when no checkpoint is given."""

from __future__ import annotations

import json

import cv2
import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

import drgnet.base_model
from drgnet.base_model import BASE_MODEL_DIR, base_checkpoint, card_sha256, ship_checkpoint
from drgnet.cli import app
from drgnet.data.synthetic import generate_fundus
from drgnet.model.checkpoint import load_checkpoint, sha256_file

runner = CliRunner()


def test_the_card_names_the_committed_weights_by_sha256():
    weights = BASE_MODEL_DIR / "model.safetensors"
    assert weights.stat().st_size <= 20 * 2**20
    listed = card_sha256(BASE_MODEL_DIR / "README.md")
    actual = sha256_file(weights)
    assert listed == {"model.safetensors": actual}
    assert json.loads((BASE_MODEL_DIR / "checkpoint.json").read_text())["weights_sha256"] == actual
    with safe_open(str(weights), framework="pt") as fh:  # safetensors: tensors only, float16 floats
        dtypes = {fh.get_slice(k).get_dtype() for k in fh.keys()}  # noqa: SIM118 (safe_open is no dict)
    assert "F16" in dtypes and "F32" not in dtypes


def test_predict_without_a_checkpoint_uses_the_base_model(tmp_path):
    photo = tmp_path / "eye.png"
    cv2.imwrite(str(photo), cv2.cvtColor(generate_fundus(2, size=160, seed=5).image, cv2.COLOR_RGB2BGR))
    result = runner.invoke(app, ["predict", str(photo), "--json"])
    assert result.exit_code == 0, result.output
    pred = json.loads(result.output.strip().splitlines()[-1])
    assert pred["grade"] in range(5) and sum(pred["probs"]) == pytest.approx(1.0, abs=1e-3)
    model, meta = load_checkpoint(base_checkpoint())
    assert meta["weights_dtype"] == "float16" and next(model.parameters()).dtype == torch.float32
    assert model.config.lesion_fov_px == 1024


def test_a_missing_base_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(drgnet.base_model, "BASE_MODEL_DIR", tmp_path / "models" / "drgnet-base")
    result = runner.invoke(app, ["predict", str(tmp_path / "eye.png")])
    assert result.exit_code == 2
    assert "drgnet-base lacks checkpoint.json, model.safetensors" in result.output.replace("\n", "")


def test_shipping_halves_the_weights_and_keeps_the_predictions(tiny_checkpoint, tmp_path):
    (tmp_path / "shipped").mkdir()
    (tmp_path / "shipped" / "README.md").write_text("# the card\n")
    shipped = ship_checkpoint(tiny_checkpoint, tmp_path / "shipped")
    assert (shipped / "README.md").read_text() == "# the card\n"  # re-shipping keeps the model card
    full = (tiny_checkpoint / "model.safetensors").stat().st_size
    assert (shipped / "model.safetensors").stat().st_size < 0.6 * full
    a, _ = load_checkpoint(tiny_checkpoint)
    b, meta = load_checkpoint(shipped)
    assert meta["shipped_from"]["checkpoint"] == str(tiny_checkpoint)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        pa, pb = a(x), b(x)
    assert torch.allclose(pa.grade_logits.softmax(1), pb.grade_logits.softmax(1), atol=2e-3)
    assert torch.allclose(pa.lesion_logits.sigmoid(), pb.lesion_logits.sigmoid(), atol=2e-3)


def test_predict_with_test_time_flips_keeps_the_grade_and_refuses_an_unknown_flip(tiny_checkpoint, tmp_path):
    photo = tmp_path / "eye.png"
    cv2.imwrite(str(photo), cv2.cvtColor(generate_fundus(3, size=160, seed=6).image, cv2.COLOR_RGB2BGR))
    args = ["predict", str(photo), "--json", "--checkpoint", str(tiny_checkpoint)]
    plain, flipped = runner.invoke(app, args), runner.invoke(app, [*args, "--tta", "flips"])
    assert plain.exit_code == 0 and flipped.exit_code == 0, plain.output + flipped.output
    a, b = (json.loads(r.output.strip().splitlines()[-1]) for r in (plain, flipped))
    assert a["grade"] == b["grade"] and a["probs"] == pytest.approx(b["probs"], abs=1e-6)
    bad = runner.invoke(app, [*args, "--tta", "rot90"])
    assert bad.exit_code == 2
    assert "unknown test-time augmentation 'rot90'" in bad.output.replace("\n", "")
