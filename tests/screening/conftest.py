"""Shared fixtures of the screening tests: a tiny checkpoint and a small folder of synthetic photographs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from drgnet.config import ModelConfig
from drgnet.data.synthetic import generate_fundus
from drgnet.model import DRGNet
from drgnet.training.checkpoint import save_checkpoint


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine OpenMP's spinning threads make tiny models several times
    slower than one thread. Restored afterwards for the other tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY = ModelConfig(encoder_weights=None, input_size=64, decoder_channels=(32, 16, 16, 8, 8), embed_dim=32)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random tiny DRGNet whose soft-exudate channel fires everywhere, so lesion columns and masks have
    something to show (the other channels keep the model's near-zero prior)."""
    torch.manual_seed(0)
    model = DRGNet(TINY).eval()
    with torch.no_grad():
        model.lesion_head[0].bias.copy_(torch.tensor([-6.0, -6.0, -6.0, 8.0]))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", model, TINY)


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    """Six synthetic photographs (128 px JPEGs) in nested folders, one grade each plus an extra."""
    root = tmp_path_factory.mktemp("photos")
    for i, grade in enumerate((0, 1, 2, 3, 4, 2)):
        folder = root / ("a" if i < 3 else "b/deeper")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"eye_{i}.jpg").write_bytes(generate_fundus(grade, size=128, seed=7, index=i).jpeg)
    return root
