"""Predict a stored photograph and record the prediction with its maps as artifacts.

Shared by the review app's upload page, the demo seeding and ``drgnet screen --db``, so all store predictions the
same way: one greyscale PNG probability map per lesion (``lesion_map_hashes``) and one for the attention map, in
uint8 steps of 1/255 (``encode_map``), and the grade probabilities and lesion summary in the ``predictions`` row.
Maps stored by earlier versions as float ``.npz`` are still read.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from db import repository
from db.artifacts import artifact_store
from db.models import Image, Prediction
from drgnet.inference import Prediction as ModelPrediction
from drgnet.inference import Predictor
from drgnet.labels import LESIONS
from feedback.display import make_display
from feedback.maps import decode_map, encode_map, load_maps, read_rgb

__all__ = [
    "checkpoint_dir",
    "decode_map",
    "encode_map",
    "load_maps",
    "predict_and_store",
    "read_rgb",
    "store_maps",
    "store_prediction",
]


def predict_and_store(
    session: Session,
    image: Image,
    predictor: Predictor,
    *,
    model_version_id: int | None = None,
    model_name: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    actor_id: int | None = None,
) -> Prediction:
    """Predict ``image`` with ``predictor`` and add the prediction row (in the caller's transaction).

    The maps are written to the artifact store before the row, so a committed row never lacks its files.
    """
    rgb = read_rgb(image, data_dir)
    start = time.perf_counter()
    pred = predictor.predict(rgb, source=image.original_filename)
    latency_ms = (time.perf_counter() - start) * 1000.0
    return store_prediction(
        session,
        image,
        pred,
        model_version_id=model_version_id,
        model_name=model_name,
        data_dir=data_dir,
        actor_id=actor_id,
        latency_ms=latency_ms,
        photo=rgb,
    )


def store_maps(pred: ModelPrediction, data_dir: str | os.PathLike[str] | None = None) -> tuple[dict[str, str], str]:
    """Write a prediction's lesion and attention maps to the artifact store; their hashes ``(lesions, attention)``.

    Safe to run outside a transaction and in parallel (the store is content-addressed and writes atomically); a
    row that never comes leaves files that ``drgnet db gc`` removes.
    """
    store = artifact_store(data_dir)
    lesion_hashes = {name: store.put_png(encode_map(pred.lesion_probs[k])) for k, name in enumerate(LESIONS)}
    return lesion_hashes, store.put_png(encode_map(pred.attention))


def store_prediction(
    session: Session,
    image: Image,
    pred: ModelPrediction,
    *,
    model_version_id: int | None = None,
    model_name: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    actor_id: int | None = None,
    latency_ms: float | None = None,
    extra_summary: dict[str, object] | None = None,
    map_hashes: tuple[dict[str, str], str] | None = None,
    photo: np.ndarray | None = None,
    display_hashes: dict[str, object] | None = None,
    shadow: bool = False,
) -> Prediction:
    """Add the prediction row of an already computed prediction (in the caller's transaction).

    Args:
        pred: Maps at the stored photograph's resolution.
        extra_summary: More keys for the row's lesion summary (the screening command adds the quality verdict).
        map_hashes: What ``store_maps(pred)`` returned, when the maps were stored beforehand.
        photo: The stored photograph as RGB when the caller has it decoded (else it is read back), for the
            review page's display-size derivatives (:mod:`feedback.display`), made here once.
        display_hashes: What ``feedback.display.make_display`` returned, when made beforehand.
        shadow: The model is not the active version: stored for comparison, never shown in the worklist.

    Raises:
        ValueError: when the maps do not have the stored photograph's size.
    """
    if pred.lesion_probs.shape[1:] != (image.height, image.width):
        raise ValueError(
            f"{image.original_filename}: the prediction's maps are {pred.lesion_probs.shape[2]}x"
            f"{pred.lesion_probs.shape[1]}, the stored photograph is {image.width}x{image.height}"
        )
    lesion_hashes, attention_hash = map_hashes if map_hashes is not None else store_maps(pred, data_dir)
    if display_hashes is None:
        display_hashes = make_display(
            photo if photo is not None else read_rgb(image, data_dir), pred.lesion_probs, pred.attention, data_dir
        )
    summary: dict[str, object] = {name: s.to_dict() for name, s in pred.lesions.items()}
    summary["_referable_probability"] = round(pred.referable_probability, 6)
    summary["_uncertainty"] = round(pred.uncertainty, 6)
    summary.update(extra_summary or {})
    return repository.add_prediction(
        session,
        image.id,
        grade=pred.grade,
        probabilities=[float(p) for p in pred.probs],
        model_version_id=model_version_id,
        model_name=model_name or (None if model_version_id is not None else pred.model_version or "unregistered"),
        lesion_summary=summary,
        lesion_map_hashes=lesion_hashes,
        attention_map_hash=attention_hash,
        latency_ms=latency_ms,
        shadow=shadow,
        actor_id=actor_id,
        display_hashes=display_hashes,
    )


def checkpoint_dir(path: str | os.PathLike[str]) -> Path:
    """A registered checkpoint path as a Path (kept as a helper so a relative path resolves one way everywhere)."""
    return Path(path).expanduser()
