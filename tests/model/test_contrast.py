"""Local contrast normalisation of the network input (``ModelConfig.local_contrast_sigma_px``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from drgnet.model import DRGNet
from drgnet.model._contrast import LocalContrast


def _fundus(side=128, cast=(0.55, 0.30, 0.15), tilt=0.2, spot=None):
    """A lit disc on black with a colour cast and illumination falling across it, optionally one dark spot."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    c = (side - 1) / 2
    inside = (yy - c) ** 2 + (xx - c) ** 2 <= (0.45 * side) ** 2
    light = 1.0 + tilt * (xx / side - 0.5)
    img = np.stack([ch * light for ch in cast]) * inside
    if spot is not None:
        y, x, r, depth = spot
        img[:, (yy - y) ** 2 + (xx - x) ** 2 <= r * r] -= depth
    return torch.from_numpy(img.astype(np.float32))[None], torch.from_numpy(inside)


def test_camera_cast_and_uneven_light_are_removed_and_the_rim_is_not_darkened():
    norm = LocalContrast(16)
    warm, inside = _fundus(cast=(0.60, 0.32, 0.12), tilt=0.3)
    cool, _ = _fundus(cast=(0.45, 0.35, 0.25), tilt=-0.1)
    a, b = norm(warm)[0], norm(cool)[0]
    yy, xx = np.mgrid[0:128, 0:128]
    deep = torch.from_numpy((yy - 63.5) ** 2 + (xx - 63.5) ** 2 <= (0.45 * 128 - 32) ** 2)
    # Two sigmas or more inside the field of view both photographs become the same flat grey.
    assert torch.allclose(a[:, deep], torch.full_like(a[:, deep], 0.5), atol=0.02)
    assert torch.allclose(a[:, deep], b[:, deep], atol=0.02)
    # At the rim the mean is one-sided, so a light gradient leaves a little; the black outside is not averaged in
    # (that would pull the mean down by half and saturate the rim at 1).
    assert (a[:, inside] - 0.5).abs().max() < 0.1
    assert torch.count_nonzero(a[:, ~inside]) == 0  # black outside stays black


def test_a_faint_dark_spot_is_kept_and_amplified_by_the_gain():
    depth = 8 / 255
    img, _ = _fundus(spot=(64, 50, 3, depth))
    out = LocalContrast(16, gain=4.0)(img)[0]
    green_drop = 0.5 - out[1, 64, 50].item()
    assert green_drop == pytest.approx(4 * depth, rel=0.2)
    assert abs(out[1, 64, 80].item() - 0.5) < 0.01  # away from the spot: grey


def test_a_crop_sees_what_the_whole_photograph_sees_away_from_its_border():
    # Tiles and training crops are normalised on their own; a normalised convolution keeps their border from
    # pulling the local mean towards the zeros beyond it.
    img, _ = _fundus(side=256, spot=(128, 128, 4, 0.05))
    norm = LocalContrast(16)
    whole = norm(img)[0, :, 96:160, 96:160]
    crop = norm(img[:, :, 64:192, 64:192])[0, :, 32:96, 32:96]
    assert torch.allclose(whole, crop, atol=0.02)


def test_the_option_changes_the_input_not_the_weights(tiny_config):
    plain = DRGNet(tiny_config)
    normed = DRGNet(replace(tiny_config, local_contrast_sigma_px=8.0))
    assert plain.state_dict().keys() == normed.state_dict().keys()  # checkpoints of either load into either
    normed.load_state_dict(plain.state_dict())
    img, _ = _fundus(side=64)
    brighter = (img * 1.0 + 0.1 * (img > 0)).clamp(0, 1)
    plain.eval(), normed.eval()
    with torch.no_grad():
        diff_plain = (plain(img).lesion_logits - plain(brighter).lesion_logits).abs().max()
        diff_normed = (normed(img).lesion_logits - normed(brighter).lesion_logits).abs().max()
    assert diff_normed < 0.1 * diff_plain  # a brightness shift reaches the plain model, hardly the normalised one
    with pytest.raises(ValueError, match="sigma"):
        LocalContrast(2)


def test_a_normalising_model_exports_to_onnx_and_reloads_with_its_setting(tiny_config, tmp_path):
    from drgnet.engines import export_onnx
    from drgnet.model.checkpoint import load_checkpoint, save_checkpoint

    config = replace(tiny_config, local_contrast_sigma_px=8.0)
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "lc", DRGNet(config).eval(), config)
    model, _ = load_checkpoint(path)
    assert model.contrast is not None and model.config.local_contrast_sigma_px == 8.0
    report = export_onnx(path, tmp_path / "lc.onnx")  # raises when ONNX Runtime disagrees with PyTorch
    assert report.max_lesion_diff < 1e-3
