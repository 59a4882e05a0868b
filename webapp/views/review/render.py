"""The pictures a review page run draws, remembered between runs (shared byte-bounded cache).

Most runs of the page change none of them (a grade key, a comment, the save), and drawing them costs more than the
rest of the run on 2 cores: every lesion overlay is blended in floating point, the lesion regions are labelled and
the canvas background is encoded. Each picture is cached under everything it depends on (the prediction, the edits,
the overlay settings, the region), so a changed setting draws it again and nothing stale is ever shown. The
prefetch of the next image draws its default pictures before the clinician asks for them.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Hashable
from typing import Any

import cv2
import numpy as np
from PIL import Image as PILImage

from drgnet.inference import render_overlay
from drgnet.labels import LESIONS
from webapp.masks import Edit, apply_edits
from webapp.services import display_cache, full_photo, predicted_masks
from webapp.views.review.regions import Region, lesion_regions, mark_region

#: The overview's settings before the clinician changes any: every lesion, no attention, opacity 0.5.
DEFAULT_VIEW = (tuple(LESIONS), False, 0.5)


def edits_key(edits: list[Edit]) -> tuple[Hashable, ...]:
    """A cache key part that changes whenever the edits do (their codes hashed: a few KB each)."""
    return tuple((e.layer, e.box, hashlib.blake2b(e.code.tobytes(), digest_size=8).hexdigest()) for e in edits)


def _owner(image: Any, prediction: Any) -> tuple[int, int | None]:
    return image.id, prediction.id if prediction is not None else None


def shown_masks(image: Any, prediction: Any, pictures: Any, edits: list[Edit]) -> np.ndarray | None:
    """Display-size lesion masks with the edits drawn in (read-only), or None without a prediction."""
    if pictures.lesions is None:
        return None
    box = (0, 0, image.width, image.height)
    return display_cache.get_or_make(
        ("rv-shown", *_owner(image, prediction), edits_key(edits)),
        lambda: apply_edits(pictures.lesions >= 128, edits, box, LESIONS, keep_small=True),
    )


def regions(
    image: Any, prediction: Any, shown: np.ndarray | None, edits: list[Edit], visible: list[str]
) -> list[Region]:
    """The lesion regions the editor steps through."""
    if shown is None:
        return []
    scale = image.width / shown.shape[2]
    return display_cache.get_or_make(
        ("rv-regions", *_owner(image, prediction), edits_key(edits), tuple(visible)),
        lambda: lesion_regions(shown, visible, scale),
    )


def overview(
    image: Any,
    prediction: Any,
    pictures: Any,
    shown: np.ndarray | None,
    edits: list[Edit],
    view: tuple[tuple[str, ...], bool, float],
    box: tuple[int, int, int, int] | None,
) -> tuple[np.ndarray, bytes]:
    """The overview (RGB, and as JPEG bytes) with the lesions ``view`` asks for and the zoomed region's frame."""
    visible, show_attention, opacity = view

    def make() -> tuple[np.ndarray, bytes]:
        attention = pictures.attention.astype(np.float32) / 255.0 if pictures.attention is not None else None
        rgb = render_overlay(
            pictures.photo,
            shown.astype(np.float32) if shown is not None else None,
            attention if show_attention else None,
            lesions=list(visible),
            opacity=opacity,
        )
        if box is not None:
            mark_region(rgb, box, image.width / rgb.shape[1])
        return rgb, jpeg(rgb, 90)

    key = ("rv-overview", *_owner(image, prediction), edits_key(edits), tuple(visible), show_attention, opacity, box)
    return display_cache.get_or_make(key, make)


def canvas_background(
    image: Any,
    prediction: Any,
    pictures: Any,
    edits: list[Edit],
    box: tuple[int, int, int, int],
    size: tuple[int, int],
    layer: str,
) -> bytes:
    """JPEG bytes of the photograph under the canvas with every layer's edited masks; the edited layer strongest."""

    def make() -> bytes:
        x0, y0, x1, y1 = box
        if (x1 - x0, y1 - y0) == (image.width, image.height):
            photo = pictures.photo
            masks = apply_edits(pictures.lesions >= 128, edits, box, LESIONS)
        else:  # a zoomed region: the full-resolution pixels of that box only
            photo = np.ascontiguousarray(full_photo(image)[y0:y1, x0:x1])
            full = predicted_masks(prediction)
            shape = (len(LESIONS), y1 - y0, x1 - x0)
            masks = apply_edits(
                full[:, y0:y1, x0:x1].copy() if full is not None else np.zeros(shape, bool), edits, box, LESIONS
            )
        layers = masks.astype(np.float32)
        others = render_overlay(photo, layers, None, lesions=[n for n in LESIONS if n != layer], opacity=0.25)
        out = render_overlay(others, layers, None, lesions=[layer], opacity=0.45)
        interpolation = cv2.INTER_NEAREST if size[0] >= out.shape[1] else cv2.INTER_AREA
        return jpeg(cv2.resize(out, size, interpolation=interpolation), 92)

    return display_cache.get_or_make(
        ("rv-canvas", *_owner(image, prediction), edits_key(edits), box, size, layer), make
    )


def jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG bytes: a picture sent to the browser on every run costs a fraction of its PNG's bytes and encoding."""
    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def warm(image: Any, prediction: Any, pictures: Any, canvas_size: tuple[int, int]) -> None:
    """Draw an image's pictures as its page first shows them (no edits, default settings): the prefetch calls this."""
    shown = shown_masks(image, prediction, pictures, [])
    overview(image, prediction, pictures, shown, [], DEFAULT_VIEW, None)
    regions(image, prediction, shown, [], list(LESIONS))
    if shown is not None and prediction is not None:
        canvas_background(image, prediction, pictures, [], (0, 0, image.width, image.height), canvas_size, LESIONS[0])
