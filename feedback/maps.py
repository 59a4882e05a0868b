"""Stored photographs and maps read back: the photograph's pixels, and the lesion and attention maps' encoding.

Maps are stored as greyscale PNGs in uint8 steps of 1/255 (:func:`encode_map`); maps stored by earlier versions as
float ``.npz`` are still read (:func:`decode_map`). Both :mod:`feedback.predictions` (which stores predictions) and
:mod:`feedback.display` (which makes the review page's derivatives of them) build on this module.
"""

from __future__ import annotations

import io
import os

import numpy as np

from db.artifacts import artifact_store
from db.ingest import read_image_bytes
from db.models import Image, Prediction
from drgnet.data.preprocess import load_rgb
from drgnet.labels import LESIONS


def read_rgb(image: Image, data_dir: str | os.PathLike[str] | None = None) -> np.ndarray:
    """The stored photograph of an image row as ``(H, W, 3)`` uint8 RGB."""
    return load_rgb(io.BytesIO(read_image_bytes(image, data_dir)))


def encode_map(probabilities: np.ndarray) -> np.ndarray:
    """A ``[0, 1]`` map as stored (a greyscale PNG): uint8 steps of 1/255.

    Steps of 1/255 are finer than anything the app draws or thresholds, and a map that is zero almost everywhere
    compresses to a few kilobytes (float16 ``.npz`` maps cost ~1.3 MB per 512 px photograph and most of a screening
    run's storing time).
    """
    return np.rint(np.clip(probabilities, 0.0, 1.0) * 255.0).astype(np.uint8)


def decode_map(stored: np.ndarray) -> np.ndarray:
    """A stored map as float32 probabilities (uint8 steps of 1/255; maps stored as floats are read unchanged)."""
    if stored.dtype == np.uint8:
        return stored.astype(np.float32) / np.float32(255.0)
    return stored.astype(np.float32)


def load_maps(
    prediction: Prediction, data_dir: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The ``(4, H, W)`` float32 lesion probabilities and ``(H, W)`` attention of a stored prediction (or None)."""
    store = artifact_store(data_dir)
    lesion = None
    if prediction.lesion_map_hashes and all(n in prediction.lesion_map_hashes for n in LESIONS):
        lesion = np.stack([decode_map(store.get_map(prediction.lesion_map_hashes[n])) for n in LESIONS])
    attention = None
    if prediction.attention_map_hash:
        attention = decode_map(store.get_map(prediction.attention_map_hash))
    return lesion, attention
