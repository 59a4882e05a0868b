"""``preprocess``: a photograph (and its lesion masks) to the model's square input, and back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from drgnet.data.preprocess._fov_geometry import _disc_mask
from drgnet.data.preprocess.crop import FOV_MARGIN, _cut_box, _fov_box, _square_box
from drgnet.data.preprocess.fov import FieldOfView, _check_image, find_fov
from drgnet.data.sample import Sample


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
    return replace(sample, image=pre.image, masks=pre.masks, ignore=ignore, meta=meta)
