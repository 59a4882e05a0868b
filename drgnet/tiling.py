"""Lesion maps at high resolution: overlapping tiles of the model's input size, blended without seams.

A median microaneurysm spans about 0.5% of the field of view's diameter, so at a 224 or 512 px global view it is
one or two pixels. The lesion maps are therefore computed on a *lesion view*: the same square around the field
of view as the global view (same ``box``), resampled so its side is ``ModelConfig.lesion_fov_px``, the scale
the decoder learned at (1024 px in the "full" recipe, where a median microaneurysm spans about 5 px; 0 for a
model trained on global views only, whose maps then come from the global view), cut into overlapping tiles of
the model's input size.
Each tile's maps are weighted by a smooth window that falls towards the tile's edges (where the network sees
the least context) and the weighted maps are divided by the sum of the weights, so the blend is a partition of
unity: a constant input gives a constant output whatever the tile layout, and overlapping tiles agree.

Nothing here knows which engine runs the tiles: :class:`TileGrid` cuts tiles and blends maps, and
:func:`tiled_maps` drives any callable ``(B, t, t, 3) uint8 -> (B, C, t, t)`` maps over them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

import cv2
import numpy as np

from drgnet.data.preprocess import Preprocessed

#: Default share of a tile's side that it shares with each neighbour.
TILE_OVERLAP = 0.25
#: Weight of a tile's outermost pixels: never zero, so a pixel covered by one tile only keeps that tile's value.
_WINDOW_FLOOR = 1e-3


def tile_starts(side: int, tile: int, overlap: float = TILE_OVERLAP) -> list[int]:
    """Offsets of tiles of ``tile`` px along a side of ``side`` px, evenly spread, first at 0, last flush.

    Neighbours share at least ``overlap * tile`` pixels (more where the side does not divide evenly).

    Raises:
        ValueError: ``overlap`` outside [0, 1).
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"tile overlap must be in [0, 1), got {overlap}")
    if side <= tile:
        return [0]
    stride = max(1, int(tile * (1.0 - overlap)))
    n = math.ceil((side - tile) / stride) + 1
    return [int(round(v)) for v in np.linspace(0, side - tile, n)]


def blend_window(tile: int, ramp: int) -> np.ndarray:
    """``(tile, tile)`` float32 weights: 1 in the middle, a raised-cosine fall over ``ramp`` px to each edge.

    The outer quarter of the ramp is at the floor: a network's zero padding disturbs its outputs most there,
    and a neighbouring tile sees those pixels well inside itself.
    """
    i = np.arange(tile, dtype=np.float64)
    rim = ramp / 4.0
    edge = (np.minimum(i + 0.5, tile - i - 0.5) - rim) / max(ramp - rim, 1.0)
    w = np.where(edge >= 1.0, 1.0, np.sin(0.5 * np.pi * np.clip(edge, 0.0, 1.0)) ** 2)
    w = np.maximum(w, _WINDOW_FLOOR)
    return np.outer(w, w).astype(np.float32)


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of one square picture lie, and how their maps are put back together.

    Attributes:
        side: Side of the square picture (the lesion view), pixels.
        tile: Side of a tile (the model's input size).
        origins: ``(y, x)`` of each tile's top-left corner, row by row.
        overlap: Share of a tile's side shared with each neighbour (at least).
    """

    side: int
    tile: int
    origins: tuple[tuple[int, int], ...]
    overlap: float = TILE_OVERLAP

    @classmethod
    def plan(cls, side: int, tile: int, overlap: float = TILE_OVERLAP, fov_mask: np.ndarray | None = None) -> TileGrid:
        """Tiles covering a ``side x side`` picture; with ``fov_mask``, tiles holding none of it are left out."""
        starts = tile_starts(side, tile, overlap)
        origins = [(y, x) for y in starts for x in starts]
        if fov_mask is not None:
            if fov_mask.shape != (side, side):
                raise ValueError(f"field-of-view mask is {fov_mask.shape}, expected ({side}, {side})")
            origins = [(y, x) for y, x in origins if fov_mask[y : y + tile, x : x + tile].any()]
        return cls(side, tile, tuple(origins), overlap)

    def __len__(self) -> int:
        return len(self.origins)

    def cut(self, image: np.ndarray) -> np.ndarray:
        """``(N, tile, tile, ...)`` tiles of a ``(side, side, ...)`` picture (zero-padded when smaller than a tile)."""
        if image.shape[:2] != (self.side, self.side):
            raise ValueError(f"picture is {image.shape[:2]}, expected ({self.side}, {self.side})")
        t = self.tile
        if self.side < t:
            image = np.pad(image, ((0, t - self.side), (0, t - self.side)) + ((0, 0),) * (image.ndim - 2))
        out = np.empty((len(self.origins), t, t, *image.shape[2:]), image.dtype)
        for k, (y, x) in enumerate(self.origins):
            out[k] = image[y : y + t, x : x + t]
        return out

    def blend(self, maps: np.ndarray) -> np.ndarray:
        """Blend ``(N, C, tile, tile)`` tile maps into ``(C, side, side)`` float32 (0 where no tile lies)."""
        n, t = len(self.origins), self.tile
        if maps.ndim != 4 or maps.shape[0] != n or maps.shape[2:] != (t, t):
            raise ValueError(f"expected ({n}, C, {t}, {t}) tile maps, got {maps.shape}")
        if n == 1 and self.side <= t:  # one tile is the whole picture: its maps, not rounded by the weighting
            return np.array(maps[0, :, : self.side, : self.side], np.float32)
        full = max(self.side, t)
        acc = np.zeros((maps.shape[1], full, full), np.float32)
        weight = np.zeros((full, full), np.float32)
        window = blend_window(t, int(round(self.overlap * t)))
        for k, (y, x) in enumerate(self.origins):
            acc[:, y : y + t, x : x + t] += maps[k] * window
            weight[y : y + t, x : x + t] += window
        np.divide(acc, weight, out=acc, where=weight > 0)
        return acc[:, : self.side, : self.side]


#: Test-time augmentation: the flips each tile is also run under (axes of a ``(B, t, t, 3)`` tile batch; 2 is
#: left-right, 1 up-down), their maps flipped back and averaged. ``"hflip"`` is the training's own symmetry (left
#: and right eyes mirror each other); ``"flips"`` adds the up-down flip and both (4 passes).
TTA_FLIPS: dict[str, tuple[tuple[int, ...], ...]] = {
    "none": ((),),
    "hflip": ((), (2,)),
    "flips": ((), (2,), (1,), (1, 2)),
}


def tta_flips(tta: str) -> tuple[tuple[int, ...], ...]:
    """The flips of a test-time augmentation name; raises ValueError naming the choices."""
    if tta not in TTA_FLIPS:
        raise ValueError(f"unknown test-time augmentation {tta!r}; expected one of {', '.join(TTA_FLIPS)}")
    return TTA_FLIPS[tta]


def unflip_maps(maps: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``(B, C, t, t)`` maps of tiles flipped along ``axes`` (tile-batch axes 1, 2), flipped back."""
    return np.flip(maps, tuple(a + 1 for a in axes)) if axes else maps


def flip_averaged(run: Callable[[np.ndarray], np.ndarray], tta: str) -> Callable[[np.ndarray], np.ndarray]:
    """``run`` (tiles ``(B, t, t, 3)`` -> maps ``(B, C, t, t)``) averaged over the flips of ``tta``.

    With ``"hflip"`` or ``"flips"`` the result is exactly equivariant to those flips: the maps of a mirrored tile
    are the mirrored maps. ``"none"`` returns ``run`` itself.
    """
    flips = tta_flips(tta)
    if len(flips) == 1:
        return run

    def averaged(tiles: np.ndarray) -> np.ndarray:
        total = None
        for axes in flips:
            seen = np.ascontiguousarray(np.flip(tiles, axes)) if axes else tiles
            maps = unflip_maps(np.asarray(run(seen), np.float32), axes)
            total = maps.copy() if total is None else total + maps
        return total / len(flips)

    return averaged


def tiled_maps(
    image: np.ndarray,
    run: Callable[[np.ndarray], np.ndarray],
    tile: int,
    *,
    overlap: float = TILE_OVERLAP,
    fov_mask: np.ndarray | None = None,
    batch_size: int = 8,
) -> np.ndarray:
    """Maps of a square picture computed tile by tile and blended.

    Args:
        image: ``(N, N, 3)`` uint8 picture (a lesion view).
        run: Any model: ``(B, tile, tile, 3) uint8 -> (B, C, tile, tile)`` maps (probabilities).
        tile: The model's input side.
        overlap: Share of a tile's side shared with each neighbour.
        fov_mask: ``(N, N)`` bool: tiles outside the field of view are not run (their area stays 0).
        batch_size: Tiles per call of ``run``.

    Returns:
        ``(C, N, N)`` float32 blended maps.
    """
    grid = TileGrid.plan(image.shape[0], tile, overlap, fov_mask)
    tiles = grid.cut(image)
    if not len(grid):
        return np.zeros((0, grid.side, grid.side), np.float32)
    maps = np.concatenate([np.asarray(run(tiles[i : i + batch_size])) for i in range(0, len(tiles), batch_size)])
    return grid.blend(maps)


def lesion_side(pre: Preprocessed, lesion_fov_px: int) -> int:
    """Side of a photograph's lesion view: ``lesion_fov_px``, but never finer than the photograph's own pixels.

    Returns 0 (no lesion view: the global view's maps serve) when that is no larger than the global view.
    """
    side = min(int(lesion_fov_px), pre.box[2] - pre.box[0])
    return side if side > pre.size else 0


def lesion_view(pre: Preprocessed, original: np.ndarray | None, side: int) -> Preprocessed:
    """The square of ``pre`` (same ``box``) at ``side x side``: a Preprocessed whose maps unproject as ``pre``'s do.

    Args:
        pre: The photograph's global view.
        original: The photograph, ``(H, W, 3)`` uint8; None gives only the geometry (a zero image that takes no
            memory), enough to map lesion maps of that side back onto the photograph.
        side: Side of the lesion view (:func:`lesion_side`).
    """
    box_side = pre.box[2] - pre.box[0]
    image = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (side, side, 3))
    geometry = replace(pre, image=image, masks=None, scale=side / box_side)
    if original is not None:
        if original.shape[:2] != tuple(pre.original_shape):
            raise ValueError(f"photograph is {original.shape[:2]} but was preprocessed at {pre.original_shape}")
        (x0, y0, x1, y1), (top, bottom, left, right) = pre.crop_box, pre.padding
        crop = cv2.copyMakeBorder(original[y0:y1, x0:x1], top, bottom, left, right, cv2.BORDER_CONSTANT, value=0)
        interp = cv2.INTER_AREA if box_side > side else cv2.INTER_CUBIC
        image = np.ascontiguousarray(cv2.resize(crop, (side, side), interpolation=interp))
    # The field of view projected like a lesion mask: the rim where a tile is worth running, and what is zeroed.
    return replace(geometry, image=image, fov_mask=geometry.project_mask(pre.fov.mask).astype(bool))


def draw_on_photograph(geometry: Preprocessed, maps: np.ndarray, fov: np.ndarray) -> np.ndarray:
    """Maps over ``geometry``'s square drawn at the photograph's own resolution, zero outside the field of view.

    Inside the field of view this equals ``geometry.unproject_mask(maps) * fov`` (bilinear, pixel centres
    aligned); it resizes the square instead of warping the whole frame, about 5x faster on a 12-megapixel
    photograph, where drawing the maps cost as much as running the network on the global view.

    Args:
        geometry: The view the maps belong to (global or lesion view).
        maps: ``(C, L, L)`` float32 with ``L = geometry.size``.
        fov: ``(H, W)`` bool field of view of the photograph.

    Returns:
        ``(C, H, W)`` float32.
    """
    x0, y0, x1, y1 = geometry.box
    cx0, cy0, cx1, cy1 = geometry.crop_box
    side = x1 - x0
    out = np.zeros((len(maps), *geometry.original_shape), np.float32)
    inside = fov[cy0:cy1, cx0:cx1]
    for k, m in enumerate(np.asarray(maps, np.float32)):
        big = cv2.resize(m, (side, side), interpolation=cv2.INTER_LINEAR)
        np.multiply(big[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0], inside, out=out[k, cy0:cy1, cx0:cx1])
    return out


def view_geometry(pre: Preprocessed, side: int) -> Preprocessed:
    """The view of ``pre``'s square whose side is ``side``: ``pre`` itself, the lesion view it carries, or the
    geometry of a lesion view of that side (made here)."""
    if side == pre.size:
        return pre
    carried = getattr(pre, "lesion", None)
    return carried if carried is not None and carried.size == side else lesion_view(pre, None, side)


@dataclass(frozen=True)
class WithLesionView(Preprocessed):
    """A global view that carries its lesion view along (a Preprocessed everywhere one is expected).

    Attributes:
        lesion: The lesion view (:func:`lesion_view`), or None.
    """

    lesion: Preprocessed | None = field(default=None, repr=False)


def attach_lesion_view(pre: Preprocessed, lesion: Preprocessed | None) -> WithLesionView:
    """``pre`` with ``lesion`` attached (no pixel is copied)."""
    return WithLesionView(**{f.name: getattr(pre, f.name) for f in fields(Preprocessed)}, lesion=lesion)


__all__ = [
    "WithLesionView",
    "attach_lesion_view",
    "TILE_OVERLAP",
    "TTA_FLIPS",
    "TileGrid",
    "blend_window",
    "draw_on_photograph",
    "lesion_side",
    "lesion_view",
    "tile_starts",
    "flip_averaged",
    "tiled_maps",
    "tta_flips",
    "unflip_maps",
    "view_geometry",
]
