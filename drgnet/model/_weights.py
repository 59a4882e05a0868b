"""Reading weight files: the one place the model touches safetensors on its own (encoder initialisation)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

WEIGHTS = "model.safetensors"  # the weights file inside a checkpoint folder


def read_safetensors(path: Path, problem: str) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file; a ValueError naming ``path`` and ``problem`` when it cannot be read."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: {problem} ({exc})") from exc


def load_encoder_weights(encoder: nn.Module, path: Path) -> None:
    """Initialise an encoder from a safetensors file (an encoder-only file or a whole DRGNet checkpoint)."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS
    state = read_safetensors(path, "cannot read encoder weights")
    if any(k.startswith("encoder.") for k in state):
        state = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    result = encoder.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise ValueError(f"{path}: encoder weights incomplete, e.g. missing {result.missing_keys[:3]}")
