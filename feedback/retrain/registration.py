"""Candidate checkpoints on disk and model versions in the database.

A candidate is written under ``<data dir>/models/<name>/`` (built in a temporary folder and renamed: a killed
worker leaves no half-written version); a version's checkpoint is checked against the sha256 the database holds
before it is loaded.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from db import repository
from db.engine import data_dir as default_data_dir
from drgnet.model import DRGNet
from drgnet.model.checkpoint import WEIGHTS, load_checkpoint, sha256_file

MODELS_DIRNAME = "models"


def models_dir(data_dir: str | Path | None = None) -> Path:
    """Where candidate checkpoints live: ``<data dir>/models``."""
    return Path(data_dir if data_dir is not None else default_data_dir()) / MODELS_DIRNAME


def remove_stale_staging(folder: Path, min_age_s: float = 3600.0) -> list[Path]:
    """Delete checkpoint staging folders (``.<name>.*``) a killed worker left behind; return what was removed."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for path in folder.glob(".*"):
        try:
            old = now - path.stat().st_mtime >= min_age_s
        except FileNotFoundError:
            continue
        if path.is_dir() and old:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def resolve_checkpoint(path: str, data_dir: str | Path | None = None) -> Path:
    """A version's checkpoint folder: relative paths are relative to the data directory."""
    p = Path(path)
    return p if p.is_absolute() else Path(data_dir if data_dir is not None else default_data_dir()) / p


def relative_to_data(path: Path, data_dir: Path) -> str:
    try:
        return path.resolve().relative_to(data_dir.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def register_checkpoint(
    session: Session,
    checkpoint: str | Path,
    name: str,
    *,
    data_dir: str | Path | None = None,
    activate: bool = False,
    replay_data: str = "",
    actor_id: int | None = None,
) -> Any:
    """Register an existing checkpoint folder (e.g. the demo model) as a model version; optionally promote it.

    ``replay_data``: the labelled folder it was trained on, replayed by later retraining (default: the training
    data recorded in the checkpoint, if that folder exists).
    """
    data = Path(data_dir if data_dir is not None else default_data_dir())
    checkpoint = Path(checkpoint)
    _, meta = load_checkpoint(checkpoint)  # validates format, config and weights
    if not replay_data:
        recorded = str((meta.get("train_config") or {}).get("data") or "")
        replay_data = recorded if recorded and Path(recorded).exists() else ""
    version = repository.add_model_version(
        session,
        name,
        relative_to_data(checkpoint, data),
        sha256_file(checkpoint / WEIGHTS),
        config={"model": meta.get("model"), "replay_data": replay_data},
        metrics=meta.get("metrics") or {},
        actor_id=actor_id,
    )
    if activate:
        repository.promote_model_version(session, version.id, actor_id=actor_id, reason="registered")
    return version


def load_version_model(version: Any, data_dir: str | Path | None = None) -> DRGNet:
    """Load a version's checkpoint, checking its weights against the sha256 the database holds."""
    path = resolve_checkpoint(version.checkpoint_path, data_dir)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise ValueError(f"model version {version.name!r}: checkpoint {path} is missing")
    actual = sha256_file(weights)
    if actual != version.checkpoint_sha256:
        raise ValueError(
            f"model version {version.name!r}: {weights} has sha256 {actual[:12]}..., the database expects "
            f"{version.checkpoint_sha256[:12]}... (replaced or corrupted)"
        )
    model, _ = load_checkpoint(path)
    return model  # type: ignore[return-value]
