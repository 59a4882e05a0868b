"""Checkpoints: a folder of safetensors weights plus JSON config and metrics. No pickle anywhere.

Layout::

    CKPT/model.safetensors   model weights
    CKPT/checkpoint.json     format, version, model config, sha256 of the weights, provenance
    CKPT/metrics.json        validation / test metrics (optional)
    CKPT/optimizer.safetensors + CKPT/trainer.json   only in resumable "last" checkpoints
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from drgnet.config import ModelConfig, from_dict, to_dict
from drgnet.model._weights import WEIGHTS, read_safetensors
from drgnet.model.drgnet import DRGNet

FORMAT = "drgnet-checkpoint"
VERSION = 1
META = "checkpoint.json"
METRICS = "metrics.json"
OPTIMIZER = "optimizer.safetensors"
TRAINER = "trainer.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _staging_folder(path: Path) -> Path:
    """A new empty folder beside ``path`` with the mode a plain ``mkdir`` gets (not mkdtemp's 0700).

    ``os.mkdir`` applies the process umask itself, so the umask is never changed to be read (a moment of umask 0
    would let another thread of the same process create world-writable files).
    """
    while True:
        staging = path.parent / f".{path.name}.{secrets.token_hex(4)}"
        try:
            staging.mkdir(mode=0o777)
        except FileExistsError:
            continue
        return staging


def save_checkpoint(
    path: Path,
    model: nn.Module,
    config: ModelConfig,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    trainer_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically: built beside ``path`` then renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging_folder(path)
    file_mode = staging.stat().st_mode & 0o666  # what the umask leaves of rw-rw-rw-
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(staging / WEIGHTS), metadata={"format": FORMAT})
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "model": to_dict(config),
            "weights_sha256": sha256_file(staging / WEIGHTS),
            **(extra or {}),
        }
        _write_json(staging / META, meta)
        if metrics is not None:
            _write_json(staging / METRICS, metrics)
        if optimizer is not None:
            tensors, groups = _flatten_optimizer(optimizer)
            save_file(tensors, str(staging / OPTIMIZER))
            _write_json(staging / TRAINER, {"param_groups": groups, **(trainer_state or {})})
        for written in staging.iterdir():  # safetensors writes 0600: another account (the app) could not read it
            written.chmod(file_mode)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(staging, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def read_checkpoint_meta(path: Path) -> dict[str, Any]:
    """The checkpoint's JSON description, validated; raises ValueError naming the problem."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: not a checkpoint folder (expected {META} and {WEIGHTS} inside)")
    meta_path = path / META
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: not a DRG-Net checkpoint ({META} missing)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{meta_path}: unreadable checkpoint description ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: not a DRG-Net checkpoint (format is not {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise ValueError(f"{meta_path}: checkpoint version {meta.get('version')!r} not supported (need {VERSION})")
    return meta


def load_checkpoint(path: Path, verify: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights (safetensors: no code execution).

    Returns:
        ``(model in eval mode, checkpoint description)``; the description includes ``"metrics"`` when present.
    """
    path = Path(path)
    meta = read_checkpoint_meta(path)
    try:
        config = from_dict(ModelConfig, meta["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path / META}: bad model config ({exc})") from exc
    weights = path / WEIGHTS
    if not weights.is_file():
        raise ValueError(f"{path}: weights file {WEIGHTS} missing")
    if verify and sha256_file(weights) != meta.get("weights_sha256"):
        raise ValueError(f"{weights}: sha256 does not match {META} (file corrupted or replaced)")
    state = read_safetensors(weights, "not a readable safetensors file")
    # The weights come from the file; don't also load ImageNet weights for the encoder.
    model = DRGNet(dataclasses.replace(config, encoder_weights=None))
    model.config = config
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()
        raise ValueError(f"{weights}: weights do not fit the model config ({'; '.join(detail[1:3])})") from None
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{weights}: weights do not fit the model config (missing {len(result.missing_keys)}, "
            f"e.g. {result.missing_keys[:2]}; unexpected {len(result.unexpected_keys)}, "
            f"e.g. {result.unexpected_keys[:2]})"
        )
    metrics_path = path / METRICS
    if metrics_path.is_file():
        meta["metrics"] = json.loads(metrics_path.read_text())
    model.eval()
    return model, meta


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"{idx}.{name}"] = t.detach().cpu().contiguous()
    return tensors, sd["param_groups"]


def load_optimizer_state(path: Path, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore an optimizer saved with the checkpoint; returns the trainer state stored beside it."""
    path = Path(path)
    trainer = json.loads((path / TRAINER).read_text())
    flat = load_file(str(path / OPTIMIZER))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": trainer.pop("param_groups")})
    return trainer
