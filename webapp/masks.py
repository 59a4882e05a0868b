"""Merging a clinician's canvas strokes onto a predicted lesion mask, at the photograph's full resolution.

The canvas shows the photograph scaled down; strokes come back at canvas resolution as "add" (painted) and
"remove" (erased) masks. They are scaled up to the photograph's size with nearest-neighbour sampling (a stroke
stays a stroke, no blurred edge counts half) and merged: ``corrected = (predicted | add) & ~remove``.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image as PILImage

from feedback import masks as feedback_masks

#: Canvas stroke colours (RGB): painting adds lesion pixels, erasing removes them.
PAINT_RGB = (0, 255, 0)
ERASE_RGB = (255, 0, 255)


def scale_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A boolean ``(H, W)`` mask resized to ``shape`` (height, width) with nearest-neighbour sampling."""
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 2:
        raise ValueError(f"a stroke mask is (H, W), got shape {mask.shape}")
    h, w = shape
    if mask.shape == (h, w):
        return mask
    return cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


def merge_full(predicted: np.ndarray, add: np.ndarray | None = None, remove: np.ndarray | None = None) -> np.ndarray:
    """The corrected mask ``(predicted | add) & ~remove`` at the predicted mask's resolution.

    Args:
        predicted: ``(H, W)`` predicted lesion mask (bool or 0/1) at the photograph's resolution.
        add: Painted pixels, at any resolution (scaled to ``(H, W)``), or None.
        remove: Erased pixels, at any resolution, or None. Erasing wins where both are set.

    Returns:
        ``(H, W)`` bool mask.
    """
    pred = np.asarray(predicted).astype(bool)
    if pred.ndim != 2:
        raise ValueError(f"a predicted mask is (H, W), got shape {pred.shape}")
    none = np.zeros(pred.shape, bool)
    add_full = scale_mask(add, pred.shape) if add is not None else none
    remove_full = scale_mask(remove, pred.shape) if remove is not None else none
    # The merge itself is the feedback layer's (one convention for the app and the retraining job).
    return feedback_masks.merge_full(pred, add_full, remove_full)


def strokes_from_canvas(rgba: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Split the canvas's RGBA drawing into (add, remove) boolean masks at canvas resolution.

    Paint strokes are green, erase strokes magenta; a pixel counts where the stroke is at least half opaque. Returns
    None when nothing is drawn.
    """
    if rgba is None:
        return None
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"canvas image data is (H, W, 4), got shape {rgba.shape}")
    drawn = rgba[..., 3] >= 128
    if not drawn.any():
        return None
    g = rgba[..., 1].astype(np.int16)
    r = rgba[..., 0].astype(np.int16)
    add = drawn & (g > r)
    remove = drawn & ~add
    return add, remove


#: Edit codes, as in the feedback layer's partial masks: 0 untouched, 1 erased, 2 painted.
UNTOUCHED, ERASED, PAINTED = 0, 1, 2


@dataclass(frozen=True)
class Edit:
    """What one canvas drew on one lesion layer, placed in the photograph.

    Attributes:
        layer: Lesion short name (MA, HE, EX, SE).
        box: ``(x0, y0, x1, y1)`` the photo pixels the canvas covered (end exclusive).
        code: uint8 ``(h, w)`` 0 untouched / 1 erased / 2 painted, covering ``box`` at any resolution: at the box's
            own size for a zoomed canvas (one value per photo pixel), smaller for a whole-photo canvas.
    """

    layer: str
    box: tuple[int, int, int, int]
    code: np.ndarray

    def to_doc(self) -> dict[str, Any]:
        """A JSON-safe form (the code as a base64 PNG) for the stored draft."""
        buf = io.BytesIO()
        PILImage.fromarray(np.ascontiguousarray(self.code.astype(np.uint8))).save(buf, format="PNG")
        return {"layer": self.layer, "box": list(self.box), "code": base64.b64encode(buf.getvalue()).decode()}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Edit:
        with PILImage.open(io.BytesIO(base64.b64decode(doc["code"]))) as im:
            code = np.asarray(im).astype(np.uint8)
        x0, y0, x1, y1 = (int(v) for v in doc["box"])
        return cls(str(doc["layer"]), (x0, y0, x1, y1), code)


def region_box(cx: int, cy: int, side: int, width: int, height: int) -> tuple[int, int, int, int]:
    """A ``side`` x ``side`` box of photo pixels centred on ``(cx, cy)``, moved (not cut) to lie inside the photo."""
    bw, bh = min(side, width), min(side, height)
    x0 = min(max(cx - bw // 2, 0), width - bw)
    y0 = min(max(cy - bh // 2, 0), height - bh)
    return x0, y0, x0 + bw, y0 + bh


def photo_point(click: dict[str, Any], width: int, height: int) -> tuple[int, int] | None:
    """The photo pixel under a click on a scaled picture of the photograph, or None for a malformed click.

    Args:
        click: ``x``, ``y`` (offset of the click in the shown picture, CSS pixels) and ``width``, ``height`` (the size
            the picture was shown at), as the overview's click component reports them.
        width: The photograph's width in photo pixels.
        height: The photograph's height in photo pixels.

    Returns:
        ``(x, y)`` in photo pixels, inside the photograph.
    """
    try:
        x, y = float(click["x"]), float(click["y"])
        shown_w, shown_h = float(click["width"]), float(click["height"])
    except (KeyError, TypeError, ValueError):
        return None
    if shown_w <= 0 or shown_h <= 0:
        return None
    # A shown pixel covers width / shown_w photo pixels; its left edge maps onto the first of them.
    px = min(max(int(x * width / shown_w), 0), width - 1)
    py = min(max(int(y * height / shown_h), 0), height - 1)
    return px, py


def canvas_size(box: tuple[int, int, int, int], max_width: int) -> tuple[int, int]:
    """Canvas ``(width, height)`` for a box: a whole number of screen pixels per photo pixel while the box fits in
    ``max_width``, so a zoomed stroke maps back onto whole photo pixels; larger boxes are scaled down to fit."""
    bw, bh = box[2] - box[0], box[3] - box[1]
    k = max_width // bw
    if k >= 1:
        return bw * k, bh * k
    return max_width, max(1, round(max_width * bh / bw))


def edit_from_canvas(layer: str, box: tuple[int, int, int, int], add: np.ndarray, remove: np.ndarray) -> Edit | None:
    """The edit a canvas over ``box`` made: canvas strokes mapped onto photo pixels.

    A zoomed canvas (several screen pixels per photo pixel) is reduced to one value per photo pixel, a photo pixel
    counting as painted (or erased) when at least half of its screen pixels are; a canvas smaller than the box keeps
    its own resolution and is scaled up when applied. None when nothing was drawn.
    """
    if add.shape != remove.shape:
        raise ValueError(f"painted {add.shape} and erased {remove.shape} strokes differ in size")
    if not (add.any() or remove.any()):
        return None
    bw, bh = box[2] - box[0], box[3] - box[1]
    ch, cw = add.shape
    if cw > bw or ch > bh:
        size = (min(cw, bw), min(ch, bh))
        add = cv2.resize(add.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5
        remove = cv2.resize(remove.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5
    code = np.zeros(add.shape, np.uint8)
    code[add] = PAINTED
    code[remove] = ERASED  # erasing wins where a pixel holds both (the feedback layer's convention)
    if not code.any():
        return None
    return Edit(layer, box, code)


def apply_edits(
    masks: np.ndarray,
    edits: list[Edit],
    view: tuple[int, int, int, int],
    lesions: tuple[str, ...] | list[str],
    *,
    keep_small: bool = False,
) -> np.ndarray:
    """Draw edits, in order (a later edit wins), onto boolean masks ``(L, H, W)`` that show the photo box ``view``.

    Args:
        masks: Lesion masks of the view, one per name in ``lesions`` (changed in place and returned).
        view: ``(x0, y0, x1, y1)`` photo pixels the masks cover, at any resolution (full size, display size, a
            zoomed region).
        keep_small: When the view is smaller than an edit's code (the display overview), keep strokes thinner than
            one view pixel visible instead of letting sampling drop them.
    """
    _, h, w = masks.shape
    vx0, vy0, vx1, vy1 = view
    sx, sy = w / (vx1 - vx0), h / (vy1 - vy0)
    for edit in edits:
        if edit.layer not in lesions:
            continue
        ex0, ey0, ex1, ey1 = edit.box
        # The edit's box in view pixels (may reach outside the view; cut below).
        tx0, ty0 = round((ex0 - vx0) * sx), round((ey0 - vy0) * sy)
        tx1, ty1 = round((ex1 - vx0) * sx), round((ey1 - vy0) * sy)
        if tx1 <= 0 or ty1 <= 0 or tx0 >= w or ty0 >= h or tx1 <= tx0 or ty1 <= ty0:
            continue
        size = (tx1 - tx0, ty1 - ty0)
        code = edit.code
        if code.shape[::-1] == size:
            painted, erased = code == PAINTED, code == ERASED
        elif keep_small and (size[0] < code.shape[1] or size[1] < code.shape[0]):
            painted = cv2.resize((code == PAINTED).astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
            erased = cv2.resize((code == ERASED).astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
            erased &= ~painted
        else:
            small = cv2.resize(code, size, interpolation=cv2.INTER_NEAREST)
            painted, erased = small == PAINTED, small == ERASED
        cx0, cy0 = max(tx0, 0), max(ty0, 0)
        cx1, cy1 = min(tx1, w), min(ty1, h)
        sl = (slice(cy0 - ty0, cy1 - ty0), slice(cx0 - tx0, cx1 - tx0))
        target = masks[lesions.index(edit.layer), cy0:cy1, cx0:cx1]
        target[painted[sl]] = True
        target[erased[sl]] = False
    return masks


def strokes_full(
    edits: list[Edit], shape: tuple[int, int], lesions: tuple[str, ...] | list[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per edited lesion, full-resolution ``(add, remove)`` masks: each pixel keeps the last action drawn on it."""
    h, w = shape
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in lesions:
        mine = [e for e in edits if e.layer == name]
        if not mine:
            continue
        # Two planes replayed through the same placement as the display: painted = last action paint, etc.
        add = np.zeros((1, h, w), bool)
        touched = np.zeros((1, h, w), bool)
        for e in mine:
            apply_edits(add, [e], (0, 0, w, h), [name])
            touched_edit = Edit(name, e.box, np.where(e.code > 0, PAINTED, UNTOUCHED).astype(np.uint8))
            apply_edits(touched, [touched_edit], (0, 0, w, h), [name])
        out[name] = (add[0], touched[0] & ~add[0])
    return out
