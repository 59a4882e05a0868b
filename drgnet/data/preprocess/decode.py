"""Decoding photographs to ``(H, W, 3)`` uint8 RGB: any format Pillow or OpenCV reads, DICOM, grey, RGBA,
16-bit, EXIF orientation, and a refusal of decompression bombs, animations and multi-page files.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from drgnet.data.dicom import is_dicom, read_dicom

#: Largest photograph (in pixels) that ``load_rgb`` decodes. Fundus cameras top out around 25 megapixels;
#: anything far larger is more likely a decompression bomb than a photograph.
MAX_IMAGE_PIXELS = 80_000_000


def load_rgb(path: str | os.PathLike[str] | BinaryIO) -> np.ndarray:
    """Read a photograph as an ``(H, W, 3)`` uint8 RGB array.

    Any file Pillow reads is accepted, and DICOM photographs (``drgnet.data.dicom``: de-identified, single frame).
    The EXIF orientation is applied, so the array is upright as a viewer
    shows it. Greyscale, palette and CMYK images become RGB; 16-bit images (greyscale or RGB PNG / TIFF) are
    scaled from their full range (65535 -> 255), not clipped. Transparent pixels are composited on black,
    the colour of a fundus photograph's border, so an exported FOV with a transparent outside stays a FOV.

    Args:
        path: A file path, or a binary file object (e.g. an upload in the web app).

    Returns:
        The photograph, ``(H, W, 3)`` uint8 RGB.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is not an image Pillow can decode, is truncated, or declares more than
            ``MAX_IMAGE_PIXELS`` pixels.
    """
    if isinstance(path, (str, os.PathLike)):
        name = str(path)
        if not Path(path).is_file():
            raise FileNotFoundError(f"{name}: no such image file")
        with open(path, "rb") as f:
            data = f.read()
    else:
        name = str(getattr(path, "name", "<uploaded image>"))
        data = path.read()
    if is_dicom(data, name):
        return to_rgb_uint8(read_dicom(data, name, max_pixels=MAX_IMAGE_PIXELS).pixels)
    try:
        with warnings.catch_warnings():
            # Our own limit (below) is stricter than the one Pillow warns about; Pillow still raises
            # DecompressionBombError on its own beyond twice its limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        w, h = image.size
        if w * h > MAX_IMAGE_PIXELS:
            raise _bomb_error(name, w * h)
        _refuse_animations_and_pages(image, name)
        if _is_16bit_colour(image):
            # Pillow keeps only 8 bits per channel of 16-bit colour images; OpenCV decodes all 16.
            array = _decode_with_opencv(data, name)
            return _apply_exif_orientation(to_rgb_uint8(array), _exif_orientation(image))
        image = ImageOps.exif_transpose(image)
        return _pil_to_rgb_uint8(image)
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _bomb_error(name, int(found.group(1)) if found else None) from exc
    except UnidentifiedImageError as exc:
        # Pillow's own message names the in-memory buffer ("<_io.BytesIO object at 0x...>"), not the file.
        raise ValueError(f"{name}: not an image Pillow can read (unknown or corrupt file format)") from exc
    except (OSError, SyntaxError, EOFError) as exc:
        raise ValueError(f"{name}: not an image Pillow can read ({exc})") from exc


def _refuse_animations_and_pages(image: Image.Image, name: str) -> None:
    """GIFs and multi-page TIFFs hold several pictures or 256 colours: say so rather than grade the first page."""
    if image.format == "GIF":
        raise ValueError(
            f"{name}: a GIF (256 colours at most, possibly animated) is not a fundus photograph format; "
            "export the photograph as JPEG, PNG or TIFF"
        )
    pages = getattr(image, "n_frames", 1)
    if image.format == "TIFF" and pages > 1:
        raise ValueError(
            f"{name}: a multi-page TIFF ({pages} pages): which page is the photograph is unknown; "
            "export each photograph as a single-page file"
        )


def to_rgb_uint8(array: np.ndarray) -> np.ndarray:
    """Bring an in-memory image to ``(H, W, 3)`` uint8 RGB.

    Accepted layouts: ``(H, W)`` or ``(H, W, 1)`` grey, ``(H, W, 2)`` grey + alpha, ``(H, W, 3)`` RGB and
    ``(H, W, 4)`` RGBA. Alpha is composited on black. Value ranges, by dtype:

    - bool: False/True -> 0/255.
    - uint8: as is. uint16: full 16-bit range, 65535 -> 255.
    - other integers (e.g. Pillow's 32-bit "I" mode): as is when within 0-255, as 16-bit when within
      0-65535, else stretched from min to max.
    - float: [0, 1] -> 0-255; values within [0, 255] are taken as 8-bit levels; anything wider is stretched
      from min to max. NaN and infinities become 0.

    Args:
        array: The image.

    Returns:
        A new ``(H, W, 3)`` uint8 array (the input itself when it already is one).

    Raises:
        ValueError: The array does not have one of the layouts above.
    """
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        colour, alpha = a[..., None], None
    elif a.ndim == 3 and a.shape[2] in (2, 3, 4):
        has_alpha = a.shape[2] in (2, 4)
        colour, alpha = (a[..., :-1], a[..., -1]) if has_alpha else (a, None)
    else:
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image array, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"image array is empty: shape {a.shape}")
    if colour.dtype == np.uint8 and colour.shape[2] == 3 and alpha is None:
        return colour if a is array else np.ascontiguousarray(colour)
    rgb = _levels_to_uint8(colour)
    if alpha is not None:
        weight = _levels_to_uint8(alpha).astype(np.float32) / 255.0
        rgb = np.rint(rgb.astype(np.float32) * weight[..., None]).astype(np.uint8)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    return np.ascontiguousarray(rgb)


def _levels_to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype.kind == "u" and a.dtype.itemsize == 2:
        # 65535 / 257 == 255 exactly: the full 16-bit range maps onto the full 8-bit range.
        return np.rint(a.astype(np.float32) / 257.0).astype(np.uint8)
    if a.dtype.kind in "iu":
        lo, hi = int(a.min()), int(a.max())
        if lo >= 0 and hi <= 255:
            return a.astype(np.uint8)
        if lo >= 0 and hi <= 65535:
            return np.rint(a.astype(np.float32) / 257.0).astype(np.uint8)
        return _stretch(a.astype(np.float64), lo, hi)
    if a.dtype.kind == "f":
        f = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(f.min()), float(f.max())
        if lo >= 0.0 and hi <= 1.0:
            return np.rint(f * 255.0).astype(np.uint8)
        if lo >= 0.0 and hi <= 255.0:
            return np.rint(f).astype(np.uint8)
        return _stretch(f, lo, hi)
    raise ValueError(f"cannot convert an image of dtype {a.dtype} to 8-bit")


def _stretch(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.rint((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _pil_to_rgb_uint8(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode == "1":
        image = image.convert("L")
    elif mode == "La":
        image = image.convert("LA")
    elif mode == "RGBa":
        image = image.convert("RGBA")
    elif mode not in ("L", "LA", "RGB", "RGBA", "I", "F") and not mode.startswith("I;16"):
        # CMYK, YCbCr, HSV, LAB, RGBX, ...: Pillow knows the way to RGB.
        try:
            image = image.convert("RGB")
        except ValueError as exc:
            raise OSError(f"cannot convert mode {mode} to RGB: {exc}") from exc
    return to_rgb_uint8(np.asarray(image))


def _is_16bit_colour(image: Image.Image) -> bool:
    if image.mode not in ("RGB", "RGBA"):
        return False
    for tile in image.tile:
        args = tile.args if isinstance(tile.args, tuple) else (tile.args,)
        if any(isinstance(arg, str) and ";16" in arg for arg in args):
            return True
    return False


def _decode_with_opencv(data: bytes, name: str) -> np.ndarray:
    # IMREAD_UNCHANGED keeps all 16 bits and alpha, and ignores EXIF orientation (applied by the caller).
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise OSError("OpenCV could not decode its 16-bit colour data")
    if array.ndim == 3 and array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA)
    if array.ndim == 3 and array.shape[2] == 3:
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    return array


def _exif_orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block must not make the photograph unreadable
        return 1


def _apply_exif_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    # Same operations as PIL.ImageOps.exif_transpose, for arrays decoded outside Pillow.
    ops = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: np.swapaxes(x, 0, 1),
        6: lambda x: np.rot90(x, -1),
        7: lambda x: np.swapaxes(x[::-1, ::-1], 0, 1),
        8: lambda x: np.rot90(x, 1),
    }
    op = ops.get(orientation)
    return a if op is None else np.ascontiguousarray(op(a))


def _bomb_error(name: str, pixels: int | None) -> ValueError:
    size = f"{pixels:,} pixels" if pixels is not None else "more pixels than Pillow allows"
    return ValueError(
        f"{name}: image too large to decode safely ({size}; the limit is {MAX_IMAGE_PIXELS:,} pixels, "
        "drgnet.data.preprocess.decode.MAX_IMAGE_PIXELS). It may be a decompression bomb; if it is a real "
        "photograph, downscale it first."
    )
