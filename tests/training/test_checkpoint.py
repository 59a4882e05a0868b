"""Checkpoints round-trip exactly and bad ones are rejected with a clear error."""

from __future__ import annotations

import json
import os

import pytest
import torch

from drgnet.model import DRGNet
from drgnet.model.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture()
def saved(tmp_path, tiny_config):
    torch.manual_seed(0)
    model = DRGNet(tiny_config).eval()
    path = save_checkpoint(tmp_path / "ckpt", model, tiny_config, metrics={"qwk": 0.5})
    return model, path


def test_round_trip_gives_identical_outputs(saved, tiny_config):
    model, path = saved
    loaded, meta = load_checkpoint(path)
    assert loaded.config == tiny_config
    assert meta["metrics"]["qwk"] == 0.5
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    torch.testing.assert_close(a.grade_logits, b.grade_logits)
    torch.testing.assert_close(a.lesion_logits, b.lesion_logits)
    assert not any(p.suffix in {".pt", ".pth", ".pkl"} for p in path.iterdir())


def test_overwriting_is_atomic_and_leaves_no_staging(saved, tmp_path, tiny_config):
    model, path = saved
    save_checkpoint(path, model, tiny_config, metrics={"qwk": 0.7})
    assert json.loads((path / "metrics.json").read_text())["qwk"] == 0.7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o777 & ~umask  # the folder's mode, not the staging folder's 0700
    for written in path.iterdir():  # files too: safetensors alone writes 0600
        assert written.stat().st_mode & 0o777 == 0o666 & ~umask, written.name


def test_modes_follow_the_umask_without_changing_it(tmp_path, tiny_config, monkeypatch):
    model = DRGNet(tiny_config)
    old = os.umask(0o027)
    try:

        def no_umask(mask):  # a moment of umask 0 would let other threads create world-writable files
            raise AssertionError("save_checkpoint changed the process umask")

        monkeypatch.setattr(os, "umask", no_umask)
        path = save_checkpoint(tmp_path / "ckpt", model, tiny_config, metrics={"qwk": 0.1})
        save_checkpoint(path, model, tiny_config, metrics={"qwk": 0.2})  # over an existing one
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o750
    assert {w.name: w.stat().st_mode & 0o777 for w in path.iterdir()} == dict.fromkeys(
        ["checkpoint.json", "metrics.json", "model.safetensors"], 0o640
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_corrupted_weights_are_rejected(saved):
    _, path = saved
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-100] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256 does not match"):
        load_checkpoint(path)


def test_truncated_weights_are_rejected_even_without_hash_check(saved):
    _, path = saved
    w = path / "model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_checkpoint(path, verify=False)


def test_config_that_does_not_fit_the_weights_is_rejected(saved):
    _, path = saved
    meta = json.loads((path / "checkpoint.json").read_text())
    meta["model"]["embed_dim"] = 64
    (path / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not fit|size mismatch"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: (p / "checkpoint.json").unlink(), "checkpoint.json missing"),
        (lambda p: (p / "checkpoint.json").write_text("{not json"), "unreadable"),
        (lambda p: (p / "checkpoint.json").write_text('{"format": "other"}'), "not a DRG-Net checkpoint"),
        (lambda p: (p / "model.safetensors").unlink(), "model.safetensors missing"),
    ],
)
def test_damaged_checkpoints_name_the_problem(saved, damage, message):
    _, path = saved
    damage(path)
    with pytest.raises(ValueError, match=message):
        load_checkpoint(path)


def test_a_pickle_file_is_not_a_checkpoint(tmp_path):
    torch.save({"x": torch.zeros(1)}, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="not a DRG-Net checkpoint"):
        load_checkpoint(tmp_path)
