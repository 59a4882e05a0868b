"""Display-size derivatives of a prediction: what the review page shows instead of the full-size files.

A 12-megapixel photograph is a ~20 MB PNG and its lesion maps are as large; decoding them on every page run costs
seconds. So when a prediction is stored, a small set of derivatives is made once and recorded in
``Prediction.display_hashes``:

    ===========  =========================================================================================
    ``photo``    the photograph, longest side at most :data:`DISPLAY_MAX_SIDE`, JPEG (quality 90)
    ``lesions``  the four lesion probability maps as one RGBA PNG (channels MA, HE, EX, SE), same size;
                 each display pixel holds the highest probability of the photo pixels it covers, so a
                 microaneurysm a few photo pixels across still shows in the overview
    ``attention`` the attention map (area average), greyscale PNG, same size
    ``size``     ``[width, height]`` of the derivatives
    ===========  =========================================================================================

Predictions stored before derivatives existed get them the first time they are shown (:func:`ensure_display`).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from db import repository
from db.artifacts import artifact_store
from db.models import Image, Prediction
from drgnet.labels import LESIONS
from feedback.maps import load_maps, read_rgb

#: Longest side of the display derivatives in pixels: wider than the review page's overview shows.
DISPLAY_MAX_SIDE = 1024
JPEG_QUALITY = 90


def display_size(width: int, height: int, max_side: int = DISPLAY_MAX_SIDE) -> tuple[int, int]:
    """``(width, height)`` of the derivatives: the photograph's, scaled down (never up) to ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _shrink_max(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    # A display pixel takes the highest value of the photo pixels it covers: dilate by the block size, then sample.
    h, w = plane.shape
    if (w, h) == size:
        return plane
    k = max(1, math.ceil(max(w / size[0], h / size[1])))
    if k > 1:
        plane = cv2.dilate(plane, np.ones((k, k), np.uint8))
    return cv2.resize(plane, size, interpolation=cv2.INTER_NEAREST)


def _as_u8(probabilities: np.ndarray) -> np.ndarray:
    a = np.asarray(probabilities)
    if a.dtype == np.uint8:
        return a
    return np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


def make_display(
    photo: np.ndarray,
    lesion_probs: np.ndarray | None,
    attention: np.ndarray | None,
    data_dir: str | os.PathLike[str] | None = None,
    max_side: int = DISPLAY_MAX_SIDE,
) -> dict[str, Any]:
    """Make and store the display derivatives; returns the ``display_hashes`` document.

    Args:
        photo: ``(H, W, 3)`` uint8 RGB photograph at full resolution.
        lesion_probs: ``(4, H, W)`` probabilities (float in [0, 1], or uint8 steps of 1/255), or None.
        attention: ``(H, W)`` attention map, or None.
    """
    h, w = photo.shape[:2]
    size = display_size(w, h, max_side)
    store = artifact_store(data_dir)
    small = cv2.resize(photo, size, interpolation=cv2.INTER_AREA) if size != (w, h) else photo
    buf = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(small)).save(buf, format="JPEG", quality=JPEG_QUALITY)
    doc: dict[str, Any] = {"photo": store.put_bytes(buf.getvalue(), "jpg"), "size": [size[0], size[1]]}
    if lesion_probs is not None:
        if lesion_probs.shape != (len(LESIONS), h, w):
            raise ValueError(f"lesion maps are {lesion_probs.shape}, the photograph is {w}x{h}")
        planes = [_shrink_max(_as_u8(lesion_probs[k]), size) for k in range(len(LESIONS))]
        doc["lesions"] = store.put_png(np.stack(planes, axis=-1))
    if attention is not None:
        att = _as_u8(attention)
        doc["attention"] = store.put_png(
            cv2.resize(att, size, interpolation=cv2.INTER_AREA) if att.shape != (h, w) or size != (w, h) else att
        )
    return doc


@dataclass(frozen=True)
class DisplayPictures:
    """The decoded derivatives: photo ``(h, w, 3)`` uint8, lesions ``(4, h, w)`` uint8 (probability * 255) or None,
    attention ``(h, w)`` uint8 or None."""

    photo: np.ndarray
    lesions: np.ndarray | None
    attention: np.ndarray | None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.photo, self.lesions, self.attention) if a is not None)


def load_display(display_hashes: dict[str, Any], data_dir: str | os.PathLike[str] | None = None) -> DisplayPictures:
    """Decode the derivatives a ``display_hashes`` document names (each file verified against its hash)."""
    store = artifact_store(data_dir)
    with PILImage.open(io.BytesIO(store.get_bytes(display_hashes["photo"]))) as im:
        photo = np.asarray(im.convert("RGB"))
    lesions = None
    if display_hashes.get("lesions"):
        lesions = np.moveaxis(store.get_png(display_hashes["lesions"]), -1, 0)
    attention = store.get_png(display_hashes["attention"]) if display_hashes.get("attention") else None
    return DisplayPictures(photo, lesions, attention)


def ensure_display(
    session: Session, prediction: Prediction, image: Image, data_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """The prediction's derivatives, made and recorded (in the caller's transaction) if it has none yet."""
    if prediction.display_hashes:
        return dict(prediction.display_hashes)
    lesions, attention = load_maps(prediction, data_dir)
    doc = make_display(read_rgb(image, data_dir), lesions, attention, data_dir)
    repository.set_display_hashes(session, prediction.id, doc)
    return doc


def photo_display(image: Image, data_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Derivatives of a photograph that has no prediction yet (not recorded: made again if asked again)."""
    return make_display(read_rgb(image, data_dir), None, None, data_dir)
