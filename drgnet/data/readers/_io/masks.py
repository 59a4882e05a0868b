"""Lesion masks: any image a source drew one in (binary, grey, colour, painted alpha) -> a boolean array."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

#: Extensions a lesion mask may have.
MASK_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff", ".png", ".gif", ".bmp", ".jpg", ".jpeg")
_JPEG = frozenset({".jpg", ".jpeg"})


def _colour_and_alpha(arr: np.ndarray, has_alpha: bool) -> np.ndarray:
    """Lesion pixels of a multi-channel array before thresholding: the strongest colour channel.

    Alpha is not a colour: an opaque RGBA mask would otherwise be lesion everywhere. It is used only when
    the colour channels are blank and alpha varies, i.e. strokes painted as opacity on a transparent sheet.
    """
    if not has_alpha:
        return arr.max(axis=2)
    colour = arr[..., :-1].max(axis=2)
    alpha = arr[..., -1]
    if not colour.any() and alpha.min() != alpha.max():
        return alpha
    return colour


def _mask_from_pil(im: Image.Image) -> tuple[np.ndarray, bool]:
    # Photographs are read upright (EXIF applied); a mask that carries its own orientation must match.
    im = ImageOps.exif_transpose(im) or im
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode == "PA":
        im = im.convert("RGBA")
    elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    arr = np.asarray(im)
    return arr, im.mode in ("LA", "La", "RGBA", "RGBa")


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one lesion mask as an ``(H, W)`` bool array.

    Any format Pillow (or, failing that, OpenCV) reads, at any bit depth, grey or colour: a pixel is lesion
    when any colour channel is above zero. JPEG masks use a threshold of 127 so compression ringing around
    a lesion does not count. For masks with alpha see the note in the code.

    Raises:
        ValueError: The file cannot be read as an image.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.seek(0)
            arr, has_alpha = _mask_from_pil(im)
    except (OSError, ValueError, SyntaxError) as exc:
        # Some TIFF compressions are beyond Pillow; OpenCV's libtiff usually reads them.
        arr = None
        try:
            import cv2

            arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        except ImportError:
            pass
        if arr is None:
            raise ValueError(f"{path}: cannot read this lesion mask as an image ({exc})") from exc
        has_alpha = arr.ndim == 3 and arr.shape[2] in (2, 4)
    if arr.ndim == 3:
        arr = _colour_and_alpha(arr, has_alpha)
    if arr.ndim != 2:
        raise ValueError(f"{path}: a lesion mask must be a 2-D image, got an array of shape {arr.shape}")
    threshold = 127 if path.suffix.lower() in _JPEG else 0
    return arr > threshold
