"""Shared fixtures of the screening tests: one torch thread and a small folder of synthetic photographs
(the tiny checkpoint is ``tiny_checkpoint`` of tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from drgnet.data.synthetic import generate_fundus


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine OpenMP's spinning threads make tiny models several times
    slower than one thread. Restored afterwards for the other tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    """Six synthetic photographs (128 px JPEGs) in nested folders, one grade each plus an extra."""
    root = tmp_path_factory.mktemp("photos")
    for i, grade in enumerate((0, 1, 2, 3, 4, 2)):
        folder = root / ("a" if i < 3 else "b/deeper")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"eye_{i}.jpg").write_bytes(generate_fundus(grade, size=128, seed=7, index=i).jpeg)
    return root
