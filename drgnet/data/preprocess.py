"""Load fundus photographs, find the field of view and bring them to the model's square input.

Everything here is numpy / OpenCV / Pillow / scikit-image: the web app and the screening workers use it
without torch.

The pipeline for one photograph::

    image = load_rgb("scan.jpg")                 # any format Pillow reads, EXIF orientation applied
    pre = preprocess(image, 512, source="scan.jpg")
    pre.image, pre.fov_mask                     # (512, 512, 3) uint8, (512, 512) bool
    full = pre.unproject_mask(predicted_map)     # back at the photograph's resolution

``preprocess`` finds the circular field of view (FOV), crops the square around it (padding with black where
the circle is clipped by the photograph's edge) and resizes, so the retina always sits at the same place and
scale whatever camera took it.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from skimage import measure

from drgnet.data.dicom import is_dicom, read_dicom
from drgnet.data.sample import Sample

#: Largest photograph (in pixels) that ``load_rgb`` decodes. Fundus cameras top out around 25 megapixels;
#: anything far larger is more likely a decompression bomb than a photograph.
MAX_IMAGE_PIXELS = 80_000_000

#: FOV detection works on a copy whose longest side is at most this many pixels.
FOV_WORK_SIZE = 512

#: Default margin around the FOV circle kept by ``crop_to_fov`` / ``preprocess``, as a fraction of the radius.
FOV_MARGIN = 0.02

# Acceptance thresholds of the "is this a fundus photograph" test, tuned on skimage.data.retina() and on the
# non-fundus photographs of scikit-image (chelsea, astronaut, coffee, ...); see tests/data/test_preprocess.py.
_MIN_FOV_COVERAGE = 0.05  # the retina fills at least this fraction of the photograph...
_MAX_FOV_COVERAGE = 0.97  # ...and leaves some dark border (corners at least)
_THRESHOLD_FRACTION = 0.15  # FOV threshold: border level + this fraction of (retina - border)
_MIN_CIRCLE_IOU = 0.90  # agreement between the bright region and the fitted (possibly clipped) disc
_MIN_CONTRAST = 10.0  # grey levels between the retina and the border around it
_MAX_BORDER_RATIO = 0.35  # border brightness / retina brightness
_MIN_BORDER_DARK = 0.90  # fraction of the border that is darker than the detection threshold
_MIN_RED_RATIO = 0.90  # mean red / max(mean green, mean blue) inside the FOV (greyscale photographs: 1.0)
_MIN_ARC_FRACTION = 0.25  # share of the circle's circumference seen as an edge (clipped FOVs show ~0.5)
_ARC_BINS = 90


# --------------------------------------------------------------------------------------------- loading


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
        "drgnet.data.preprocess.MAX_IMAGE_PIXELS). It may be a decompression bomb; if it is a real "
        "photograph, downscale it first."
    )


# ------------------------------------------------------------------------------------- field of view


class NotFundusError(ValueError):
    """The image does not look like a colour fundus photograph (no circular field of view found)."""


@dataclass(frozen=True)
class FieldOfView:
    """The circular region of a fundus photograph that shows the retina.

    Attributes:
        mask: ``(H, W)`` bool, True inside the field of view (the fitted circle, cut flat where the
            photograph clips it, and never outside the image).
        center: Circle centre ``(cx, cy)`` in pixel coordinates (x right, y down; pixel centres at integers).
            May lie outside the image for strongly clipped photographs.
        radius: Circle radius in pixels.
        bbox: ``(x0, y0, x1, y1)`` of ``mask``, ``x1``/``y1`` exclusive.
        clipped_top_bottom: True when the circle is cut flat at the top and/or bottom (by the photograph's
            edge or by the camera's mask), as many cameras do.
        coverage: Fraction of the photograph's pixels inside the field of view.
        found: False when no field of view was detected and the whole image stands in for it
            (only with ``find_fov(..., check_fundus=False)``).
    """

    mask: np.ndarray = field(repr=False)
    center: tuple[float, float]
    radius: float
    bbox: tuple[int, int, int, int]
    clipped_top_bottom: bool
    coverage: float
    found: bool = True


@dataclass(frozen=True)
class _Detection:
    """FOV detection at working resolution, with the evidence the fundus test looks at."""

    cx: float
    cy: float
    radius: float
    y_cut: tuple[float, float]  # rows (inclusive, working resolution) outside which the FOV is cut
    x_cut: tuple[float, float]
    checks: dict[str, float]
    failures: list[str]
    geometry_ok: bool = False  # a circular FOV on a dark border was found, whatever its colours


def find_fov(image: np.ndarray, source: str = "image", check_fundus: bool = True) -> FieldOfView:
    """Find the circular field of view of a fundus photograph.

    The retina is a bright disc on a dark border, often cut flat at the top and bottom. On a copy whose
    longest side is ``FOV_WORK_SIZE`` the brightest channel is smoothed and thresholded between the border's
    and the retina's brightness; the largest bright component (holes filled, thin bridges to burnt-in text
    cut) gives the boundary, and a circle is fitted to the boundary points that are neither on the image
    edge nor on flat cuts (iteratively dropping points that fall inside the circle, such as chords, or
    outside it, such as the notch some cameras print). Results are scaled back to full resolution.

    Args:
        image: ``(H, W, 3)`` uint8 RGB photograph (any size).
        source: Name of the photograph for error messages, e.g. its file name.
        check_fundus: Raise ``NotFundusError`` when the photograph does not look like a fundus photograph.
            When False, a circular field of view on a dark border is returned whatever its colours (e.g.
            red-free photographs), and any other image gets one covering the whole image (``found=False``).

    Returns:
        The field of view at the photograph's resolution.

    Raises:
        NotFundusError: ``check_fundus`` is True and no circular field of view on a dark border was found.
    """
    image = _check_image(image, source)
    h, w = image.shape[:2]
    det = _detect(image)
    if det.failures and check_fundus:
        raise NotFundusError(
            f"{source}: not a fundus photograph (no circular field of view found: "
            f"{'; '.join(det.failures)}). Pass check_fundus=False to use the whole image."
        )
    if not det.geometry_ok:
        return _whole_image_fov(h, w)
    wh, ww = _work_shape(h, w)
    sx, sy = w / ww, h / wh
    cx, cy, r = _to_full(det.cx, sx), _to_full(det.cy, sy), det.radius * (sx + sy) / 2.0
    y_lo, y_hi = (_to_full(v, sy) for v in det.y_cut)
    x_lo, x_hi = (_to_full(v, sx) for v in det.x_cut)
    mask = _disc_mask((h, w), (cx, cy), r, (y_lo, y_hi), (x_lo, x_hi))
    if not mask.any():
        if check_fundus:
            raise NotFundusError(f"{source}: not a fundus photograph (field of view is empty)")
        return _whole_image_fov(h, w)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    bbox = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    clipped = bool(cy - r < bbox[1] - 0.5 - 0.01 * r or cy + r > bbox[3] - 0.5 + 0.01 * r)
    return FieldOfView(
        mask=mask,
        center=(cx, cy),
        radius=r,
        bbox=bbox,
        clipped_top_bottom=clipped,
        coverage=float(mask.mean()),
    )


def _check_image(image: np.ndarray, source: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{source}: expected an (H, W, 3) uint8 RGB image (see to_rgb_uint8), got {got}")
    if min(image.shape[:2]) < 8:
        raise ValueError(f"{source}: image is too small ({image.shape[1]}x{image.shape[0]} pixels)")
    return image


def _whole_image_fov(h: int, w: int) -> FieldOfView:
    return FieldOfView(
        mask=np.ones((h, w), bool),
        center=((w - 1) / 2.0, (h - 1) / 2.0),
        radius=max(h, w) / 2.0,
        bbox=(0, 0, w, h),
        clipped_top_bottom=False,
        coverage=1.0,
        found=False,
    )


def _work_shape(h: int, w: int) -> tuple[int, int]:
    s = min(1.0, FOV_WORK_SIZE / max(h, w))
    return max(1, round(h * s)), max(1, round(w * s))


def _to_full(v: float, scale: float) -> float:
    # Pixel centres sit at integers at both resolutions; cv2.resize maps centres the same way.
    return (v + 0.5) * scale - 0.5


def _detect(image: np.ndarray) -> _Detection:
    h, w = image.shape[:2]
    wh, ww = _work_shape(h, w)
    small = cv2.resize(image, (ww, wh), interpolation=cv2.INTER_AREA) if (wh, ww) != (h, w) else image
    small_f = small.astype(np.float32)
    # The brightest channel: red for a colour fundus, but also fine for greyscale or green-tinted cameras.
    # A median (not Gaussian) filter removes noise and JPEG artefacts without moving the edge.
    bright = cv2.medianBlur(small.max(axis=2), 5 if min(wh, ww) >= 100 else 3).astype(np.float32)
    failures: list[str] = []
    checks: dict[str, float] = {}

    def fail(msg: str) -> _Detection:
        failures.append(msg)
        return _Detection(0.0, 0.0, 0.0, (0.0, 0.0), (0.0, 0.0), checks, failures)

    # The border fills the corners (over 2% of any photograph with a visible circle); Otsu separates it from
    # the retina, whose typical level is then the median of the bright side.
    border = float(np.percentile(bright, 2))
    above = bright[bright > _otsu(bright)]
    retina = float(np.median(above)) if above.size else border
    checks["contrast"] = retina - border
    if retina - border < _MIN_CONTRAST:
        return fail(f"no bright region on a dark border, brightness range {retina - border:.0f} grey levels")
    # Low in the range, so the dim rim of a vignetted or under-exposed retina stays inside.
    threshold = border + _THRESHOLD_FRACTION * (retina - border)
    bw = (bright > threshold).astype(np.uint8)
    # Opening cuts thin bridges between the retina and burnt-in text or eyelash glare.
    k = max(1, round(max(wh, ww) / 100))
    bw = cv2.morphologyEx(bw, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1,) * 2))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bw, connectivity=8)
    if n < 2:
        return fail("no bright region")
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    component = (labels == largest).astype(np.uint8)
    contours, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    component = np.zeros_like(component)
    cv2.drawContours(component, contours, -1, 1, thickness=cv2.FILLED)  # fills holes (dark lesions, vessels)
    comp = component.astype(bool)
    coverage = float(comp.mean())
    checks["coverage"] = coverage
    if coverage < _MIN_FOV_COVERAGE:
        return fail(f"bright region covers only {coverage:.0%} of the image")
    if coverage > _MAX_FOV_COVERAGE:
        return fail(f"no dark border: the bright region covers {coverage:.0%} of the image")

    points = _boundary_points(comp)
    if len(points) < 12:
        return fail("too few edge points to fit a circle")
    circle = _fit_circle_robust(points)
    if circle is None:
        return fail("edge is not circular")
    (cx, cy, r), inliers = circle
    angles = np.arctan2(inliers[:, 1] - cy, inliers[:, 0] - cx)
    bins = np.floor((angles + np.pi) / (2 * np.pi) * _ARC_BINS).astype(int) % _ARC_BINS
    arc = len(np.unique(bins)) / _ARC_BINS
    checks["arc"] = arc
    rows, cols = np.flatnonzero(comp.any(axis=1)), np.flatnonzero(comp.any(axis=0))
    # Flat cuts: the component ends before the circle does. Cut half a pixel outside the last row.
    tol = max(1.5, 0.015 * r)
    y_cut = (
        rows[0] - 0.5 if cy - r < rows[0] - tol else -np.inf,
        rows[-1] + 0.5 if cy + r > rows[-1] + tol else np.inf,
    )
    x_cut = (
        cols[0] - 0.5 if cx - r < cols[0] - tol else -np.inf,
        cols[-1] + 0.5 if cx + r > cols[-1] + tol else np.inf,
    )
    disc = _disc_mask((wh, ww), (cx, cy), r, y_cut, x_cut)
    union = np.count_nonzero(disc | comp)
    iou = np.count_nonzero(disc & comp) / union if union else 0.0
    checks["circle_iou"] = iou

    outside = ~_disc_mask((wh, ww), (cx, cy), r * 1.03 + 1, y_cut, x_cut)
    inside = _disc_mask((wh, ww), (cx, cy), max(1.0, r * 0.97 - 1), y_cut, x_cut) & comp
    if not inside.any() or not outside.any():
        return fail("no dark border around the bright region")
    border_level = float(np.median(bright[outside]))
    retina_level = float(np.median(bright[inside]))
    dark = float(np.mean(bright[outside] <= threshold))
    checks.update(border_ratio=border_level / max(retina_level, 1e-6), border_dark=dark)
    mean_rgb = small_f[inside].mean(axis=0)
    red_ratio = float(mean_rgb[0] / max(mean_rgb[1], mean_rgb[2], 1e-6))
    checks["red_ratio"] = red_ratio

    if arc < _MIN_ARC_FRACTION:
        failures.append(f"only {arc:.0%} of a circular edge visible")
    if iou < _MIN_CIRCLE_IOU:
        failures.append(f"bright region is not a disc (overlap with fitted circle {iou:.2f})")
    if retina_level - border_level < _MIN_CONTRAST or checks["border_ratio"] > _MAX_BORDER_RATIO:
        failures.append(f"border not dark (border {border_level:.0f} vs retina {retina_level:.0f} grey levels)")
    if dark < _MIN_BORDER_DARK:
        failures.append(f"only {dark:.0%} of the border around the circle is dark")
    geometry_ok = not failures
    if red_ratio < _MIN_RED_RATIO:
        failures.append(
            "colours unlike a retina (mean RGB inside "
            + ", ".join(f"{v:.0f}" for v in mean_rgb)
            + "; a retina is red-dominant)"
        )
    return _Detection(float(cx), float(cy), float(r), y_cut, x_cut, checks, failures, geometry_ok)


def _otsu(values: np.ndarray) -> float:
    v = np.clip(values, 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(v, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t)


def _boundary_points(comp: np.ndarray) -> np.ndarray:
    """Sub-pixel boundary of a mask, without the points that cannot lie on the circle: those on the image
    edge and those along the mask's extreme rows and columns (flat cuts of the camera's mask)."""
    h, w = comp.shape
    rows, cols = np.flatnonzero(comp.any(axis=1)), np.flatnonzero(comp.any(axis=0))
    padded = np.pad(comp.astype(np.float32), 1)
    contours = measure.find_contours(padded, 0.5)
    if not contours:
        return np.zeros((0, 2))
    pts = np.concatenate(contours) - 1.0  # (row, col) -> unpadded coordinates
    pts = pts[:, ::-1]  # (x, y)
    x, y = pts[:, 0], pts[:, 1]
    keep = (x > 0.0) & (x < w - 1.0) & (y > 0.0) & (y < h - 1.0)
    # A circle's extreme row is a short cap (about 2 * sqrt(2 r) pixels); a much longer one is a flat cut.
    half_w, half_h = (cols[-1] - cols[0] + 1) / 2.0, (rows[-1] - rows[0] + 1) / 2.0
    cap_w, cap_h = 4.0 * np.sqrt(2.0 * half_w) + 2, 4.0 * np.sqrt(2.0 * half_h) + 2
    if comp[rows[0]].sum() > cap_w:
        keep &= y > rows[0] + 1.5
    if comp[rows[-1]].sum() > cap_w:
        keep &= y < rows[-1] - 1.5
    if comp[:, cols[0]].sum() > cap_h:
        keep &= x > cols[0] + 1.5
    if comp[:, cols[-1]].sum() > cap_h:
        keep &= x < cols[-1] - 1.5
    return pts[keep]


def _fit_circle(points: np.ndarray) -> tuple[float, float, float] | None:
    """Algebraic (Kasa) fit refined by a few Gauss-Newton steps on the geometric distance."""
    x, y = points[:, 0], points[:, 1]
    a = np.column_stack([x, y, np.ones_like(x)])
    b = x * x + y * y
    try:
        sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    except np.linalg.LinAlgError:
        return None
    cx, cy = sol[0] / 2.0, sol[1] / 2.0
    r2 = sol[2] + cx * cx + cy * cy
    if not np.isfinite(r2) or r2 <= 0:
        return None
    c = np.array([cx, cy, np.sqrt(r2)])
    for _ in range(5):
        dx, dy = x - c[0], y - c[1]
        d = np.hypot(dx, dy)
        d[d == 0] = 1e-9
        jac = np.column_stack([-dx / d, -dy / d, -np.ones_like(d)])
        step, *_ = np.linalg.lstsq(jac, -(d - c[2]), rcond=None)
        c += step
        if np.abs(step).max() < 1e-3:
            break
    if not np.all(np.isfinite(c)) or c[2] <= 0:
        return None
    return float(c[0]), float(c[1]), float(c[2])


def _fit_circle_robust(points: np.ndarray) -> tuple[tuple[float, float, float], np.ndarray] | None:
    """Fit, then refit on the points near the circle; chords lie inside it and camera notches outside."""
    keep = points
    circle = _fit_circle(keep)
    for tol in (0.10, 0.05, 0.025, 0.015, 0.015):
        if circle is None:
            return None
        cx, cy, r = circle
        resid = np.hypot(points[:, 0] - cx, points[:, 1] - cy) - r
        near = np.abs(resid) <= max(tol * r, 1.0)
        if near.sum() < 12:
            return None
        keep = points[near]
        circle = _fit_circle(keep)
    if circle is None:
        return None
    return circle, keep


def _disc_mask(
    shape: tuple[int, int],
    center: tuple[float, float],
    radius: float,
    y_cut: tuple[float, float] = (-np.inf, np.inf),
    x_cut: tuple[float, float] = (-np.inf, np.inf),
) -> np.ndarray:
    """Pixels whose centre lies inside the circle and within the cut rows / columns."""
    h, w = shape
    cx, cy = center
    ys = np.arange(h, dtype=np.float64)
    half = np.sqrt(np.maximum(radius * radius - (ys - cy) ** 2, 0.0))
    inside_rows = (np.abs(ys - cy) <= radius) & (ys >= y_cut[0]) & (ys <= y_cut[1])
    lo = np.maximum(cx - half, x_cut[0])
    hi = np.minimum(cx + half, x_cut[1])
    xs = np.arange(w, dtype=np.float64)
    mask = (xs[None, :] >= lo[:, None]) & (xs[None, :] <= hi[:, None])
    mask &= inside_rows[:, None]
    return mask


# ------------------------------------------------------------------------------------ crop and resize


def _fov_box(fov: FieldOfView, margin: float) -> tuple[int, int, int, int]:
    """Square box ``(x0, y0, x1, y1)`` centred on the FOV circle; may extend beyond the image."""
    cx, cy = fov.center
    side = max(1, int(np.ceil(2 * fov.radius * (1.0 + margin))))
    x0 = int(round(cx + 0.5 - side / 2.0))
    y0 = int(round(cy + 0.5 - side / 2.0))
    return x0, y0, x0 + side, y0 + side


def _square_box(h: int, w: int) -> tuple[int, int, int, int]:
    side = max(h, w)
    x0, y0 = -((side - w) // 2), -((side - h) // 2)
    return x0, y0, x0 + side, y0 + side


def _cut_box(a: np.ndarray, box: tuple[int, int, int, int], fill: float | tuple[float, ...] = 0) -> np.ndarray:
    """``a[y0:y1, x0:x1]`` where the parts of the box outside ``a`` are filled with ``fill``."""
    x0, y0, x1, y1 = box
    h, w = a.shape[:2]
    out = np.empty((y1 - y0, x1 - x0) + a.shape[2:], a.dtype)
    out[...] = np.asarray(fill, dtype=a.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = a[sy0:sy1, sx0:sx1]
    return out


def crop_to_fov(
    image: np.ndarray, fov: FieldOfView, margin: float = FOV_MARGIN, fill: int | tuple[int, ...] = 0
) -> np.ndarray:
    """Cut the square around the FOV circle, centred on it; where the photograph clips the circle, fill.

    Args:
        image: ``(H, W, ...)`` array at the resolution ``fov`` was found at.
        fov: The photograph's field of view.
        margin: Extra border around the circle, as a fraction of the radius.
        fill: Value of the pixels outside the photograph (black, like a fundus border).

    Returns:
        A square array of side ``ceil(2 * radius * (1 + margin))``.
    """
    if image.shape[:2] != fov.mask.shape:
        raise ValueError(f"image is {image.shape[:2]} but the field of view was found on {fov.mask.shape}")
    return _cut_box(image, _fov_box(fov, margin), fill)


def pad_to_square(image: np.ndarray, fill: int | tuple[int, ...] = 0) -> np.ndarray:
    """Pad the shorter side evenly (extra pixel at the bottom / right) so the image becomes square."""
    return _cut_box(image, _square_box(*image.shape[:2]), fill)


@dataclass(frozen=True)
class Preprocessed:
    """A photograph brought to the model's square input, with what it takes to map results back.

    The model input is the square ``box`` of the original photograph (which may reach beyond it: those parts
    are black) resized by ``scale`` to ``size x size``.

    Attributes:
        image: ``(size, size, 3)`` uint8 RGB.
        fov_mask: ``(size, size)`` bool, True inside the field of view.
        masks: ``(4, size, size)`` uint8 lesion masks in ``LESIONS`` order, or None when none were given.
        original_shape: ``(H, W)`` of the photograph.
        box: ``(x0, y0, x1, y1)`` square in original pixel coordinates (x1, y1 exclusive).
        scale: Output pixels per original pixel, ``size / (x1 - x0)``.
        fov: The field of view at original resolution.
    """

    image: np.ndarray = field(repr=False)
    fov_mask: np.ndarray = field(repr=False)
    masks: np.ndarray | None = field(repr=False)
    original_shape: tuple[int, int]
    box: tuple[int, int, int, int]
    scale: float
    fov: FieldOfView = field(repr=False)

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    @property
    def crop_box(self) -> tuple[int, int, int, int]:
        """The part of ``box`` inside the photograph, ``(x0, y0, x1, y1)``."""
        h, w = self.original_shape
        x0, y0, x1, y1 = self.box
        return max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """Original-resolution pixels added outside the photograph: ``(top, bottom, left, right)``."""
        h, w = self.original_shape
        x0, y0, x1, y1 = self.box
        return max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0)

    def to_original_xy(self, x: float, y: float) -> tuple[float, float]:
        """Original pixel coordinates of a point given in model-input pixel coordinates."""
        return (x + 0.5) / self.scale - 0.5 + self.box[0], (y + 0.5) / self.scale - 0.5 + self.box[1]

    def project_mask(self, mask: np.ndarray) -> np.ndarray:
        """Bring a mask painted at original resolution to the model input, keeping lesions of a few pixels.

        Args:
            mask: ``(H, W)`` or ``(C, H, W)`` mask at the photograph's resolution.

        Returns:
            uint8 ``(size, size)`` or ``(C, size, size)`` in {0, 1}.
        """
        size = self.size
        return _resize_stack(mask, self.original_shape, (size, size), lambda m: _project_binary(m, self.box, size))

    def unproject_mask(
        self, mask: np.ndarray, interpolation: str = "auto", out_shape: tuple[int, int] | None = None
    ) -> np.ndarray:
        """Map a model-resolution map back onto the original photograph (or a scaled copy of it).

        Pixels of the photograph outside ``box`` (beyond the field of view) get 0.

        Args:
            mask: ``(size, size)`` or ``(C, size, size)`` mask or probability map.
            interpolation: ``"nearest"`` (labels), ``"linear"`` (probabilities) or ``"auto"``: linear for
                float input, nearest otherwise.
            out_shape: ``(h, w)`` of a uniformly scaled copy of the photograph to map onto (a display
                derivative); default its own ``(H, W)``.

        Returns:
            ``(H, W)`` (or ``out_shape``) or ``(C, ...)`` with the input's dtype.
        """
        if interpolation == "auto":
            interpolation = "linear" if np.asarray(mask).dtype.kind == "f" else "nearest"
        if interpolation not in ("nearest", "linear"):
            raise ValueError(f"interpolation must be 'nearest', 'linear' or 'auto', got {interpolation!r}")
        flag = cv2.INTER_NEAREST if interpolation == "nearest" else cv2.INTER_LINEAR
        h, w = self.original_shape if out_shape is None else out_shape
        ky, kx = h / self.original_shape[0], w / self.original_shape[1]  # 1 at the photograph's resolution
        s, (x0, y0) = self.scale, self.box[:2]
        # Maps model-input pixel centres onto (scaled) original pixel centres (the inverse of cv2.resize's mapping).
        m = np.array(
            [[kx / s, 0, kx * (0.5 / s + x0) - 0.5], [0, ky / s, ky * (0.5 / s + y0) - 0.5]],
            np.float64,
        )

        def warp(a: np.ndarray) -> np.ndarray:
            src = a.astype(np.uint8) if a.dtype == np.bool_ else a
            if src.dtype not in (np.uint8, np.uint16, np.int16, np.float32):  # what warpAffine takes
                src = src.astype(np.float32)
            out = cv2.warpAffine(src, m, (w, h), flags=flag, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            return out.astype(a.dtype)

        return _resize_stack(mask, (self.size, self.size), (h, w), warp)


def _resize_stack(
    mask: np.ndarray,
    expected: tuple[int, int],
    out_shape: tuple[int, int],
    fn: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    a = np.asarray(mask)
    if a.ndim not in (2, 3) or a.shape[-2:] != tuple(expected):
        raise ValueError(f"expected a mask of shape (H, W) or (C, H, W) with (H, W) = {expected}, got {a.shape}")
    if a.ndim == 2:
        return fn(a)
    if len(a) == 0:
        return np.zeros((0, *out_shape), a.dtype)
    return np.stack([fn(c) for c in a])


def _project_binary(mask: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Resize a binary mask into the model input. Downscaling keeps each lesion: a lesion whose area would
    round away (a microaneurysm of 3 pixels shrunk 8 times) keeps the pixels it overlaps most."""
    binary = np.asarray(mask) > 0
    if not binary.any():  # most lesion channels of most photographs
        return np.zeros((size, size), np.uint8)
    m = _cut_box(binary.astype(np.uint8), box, 0)
    side = m.shape[0]
    if side <= size:
        return cv2.resize(m, (size, size), interpolation=cv2.INTER_NEAREST)
    frac = cv2.resize(m.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    out = (frac >= 0.5).astype(np.uint8)
    touched = (frac > 1e-6).astype(np.uint8)
    n, labels = cv2.connectedComponents(touched, connectivity=8)
    if n > 1:
        kept = np.zeros(n, bool)
        kept[np.unique(labels[out > 0])] = True
        kept[0] = True
        lost = ~kept[labels]
        if lost.any():
            # In each lost lesion, keep the pixel(s) it covers most.
            lab = labels[lost]
            best = np.zeros(n, np.float32)
            np.maximum.at(best, lab, frac[lost])
            out[lost] = (frac[lost] >= best[lab] - 1e-6).astype(np.uint8)
    return out


def preprocess(
    image: np.ndarray,
    size: int,
    source: str = "image",
    masks: np.ndarray | None = None,
    check_fundus: bool = True,
    margin: float = FOV_MARGIN,
) -> Preprocessed:
    """Crop a photograph to its field of view and resize it to the model's ``size x size`` input.

    The square around the FOV circle is cut (black where the circle is clipped by the photograph) and
    resized: area interpolation when shrinking, cubic when enlarging. Lesion masks follow the same geometry;
    when shrinking, each lesion keeps at least one pixel.

    Args:
        image: ``(H, W, 3)`` uint8 RGB photograph, any size and aspect ratio (see ``to_rgb_uint8``).
        size: Side of the square output in pixels.
        source: Name of the photograph for error messages.
        masks: Optional ``(4, H, W)`` lesion masks (any number of channels is accepted) at the
            photograph's resolution.
        check_fundus: Raise ``NotFundusError`` for images that are not fundus photographs. When False such
            an image is padded to a square as a whole, and its ``fov_mask`` covers the whole image.
        margin: Border kept around the FOV circle, as a fraction of its radius.

    Returns:
        The model input and the geometry to map results back (``Preprocessed.unproject_mask``).

    Raises:
        NotFundusError: ``check_fundus`` is True and the image is not a fundus photograph.
        ValueError: Bad ``size``, image or mask shapes.
    """
    if int(size) < 8:
        raise ValueError(f"{source}: size must be at least 8 pixels, got {size}")
    size = int(size)
    image = _check_image(image, source)
    h, w = image.shape[:2]
    if masks is not None and (masks.ndim != 3 or masks.shape[1:] != (h, w)):
        raise ValueError(f"{source}: masks must be (C, {h}, {w}) like the image, got {masks.shape}")
    fov = find_fov(image, source=source, check_fundus=check_fundus)
    box = _fov_box(fov, margin) if fov.found else _square_box(h, w)
    side = box[2] - box[0]
    crop = _cut_box(image, box, 0)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    out = cv2.resize(crop, (size, size), interpolation=interp) if side != size else crop
    scale = size / side
    pre = Preprocessed(
        image=np.ascontiguousarray(out),
        fov_mask=np.zeros((size, size), bool),
        masks=None,
        original_shape=(h, w),
        box=box,
        scale=scale,
        fov=fov,
    )
    fov_mask = _project_fov(fov, box, scale, size)
    lesion_masks = pre.project_mask(masks) if masks is not None else None
    return replace(pre, fov_mask=fov_mask, masks=lesion_masks)


def _project_fov(fov: FieldOfView, box: tuple[int, int, int, int], scale: float, size: int) -> np.ndarray:
    """The FOV at model resolution, drawn from the circle rather than resampled: crisp at any scale."""
    x0, y0 = box[:2]

    def to_small(v: float, origin: int) -> float:
        return (v - origin + 0.5) * scale - 0.5

    # Pixel (i, j) of the original covers [i - 0.5, i + 0.5]: the FOV's bbox edges map like pixel centres.
    bx0, by0, bx1, by1 = fov.bbox
    y_cut = (to_small(by0 - 0.5, y0), to_small(by1 - 0.5, y0))
    x_cut = (to_small(bx0 - 0.5, x0), to_small(bx1 - 0.5, x0))
    if not fov.found:
        return _disc_mask((size, size), (0.0, 0.0), np.inf, y_cut, x_cut)
    center = (to_small(fov.center[0], x0), to_small(fov.center[1], y0))
    return _disc_mask((size, size), center, fov.radius * scale, y_cut, x_cut)


def preprocess_sample(sample: Sample, size: int, check_fundus: bool = True) -> Sample:
    """Apply ``preprocess`` to a ``Sample``: image, lesion masks and ``ignore`` (True outside the FOV).

    Args:
        sample: The sample at its original resolution.
        size: Side of the square output.
        check_fundus: See ``preprocess``.

    Returns:
        A new Sample of ``size x size``; ``meta["preprocess"]`` records the geometry (``box``, ``scale``,
        ``original_shape``, ``fov_center``, ``fov_radius``).
    """
    name = str(sample.path) if sample.path is not None else sample.name
    pre = preprocess(sample.image, size, source=name, masks=sample.masks, check_fundus=check_fundus)
    ignore = ~pre.fov_mask
    if sample.ignore is not None:
        ignore |= pre.project_mask(sample.ignore).astype(bool)
    meta = dict(sample.meta)
    meta["preprocess"] = {
        "original_shape": pre.original_shape,
        "box": pre.box,
        "scale": pre.scale,
        "fov_center": pre.fov.center,
        "fov_radius": pre.fov.radius,
        "fov_found": pre.fov.found,
    }
    return Sample(
        image=pre.image,
        name=sample.name,
        source=sample.source,
        grade=sample.grade,
        masks=pre.masks,
        lesion_known=sample.lesion_known,
        ignore=ignore,
        path=sample.path,
        meta=meta,
    )


__all__ = [
    "FOV_MARGIN",
    "MAX_IMAGE_PIXELS",
    "FieldOfView",
    "NotFundusError",
    "Preprocessed",
    "crop_to_fov",
    "find_fov",
    "load_rgb",
    "pad_to_square",
    "preprocess",
    "preprocess_sample",
    "to_rgb_uint8",
]
