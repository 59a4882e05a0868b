"""Prediction for one photograph at a time: load a checkpoint, preprocess, predict, summarise, draw.

Everything returned is numpy at the photograph's own resolution, so the app can paint corrections on the
original and the screening CLI can write masks that line up with the files it read, unless a pixel limit for
derivatives is given (``map_max_pixels``; ``drgnet predict`` and ``screen --masks`` use :func:`draw_max_pixels`):
then maps and overlays are drawn on a uniformly downscaled copy of at most that many pixels, never on the
original (a 79-megapixel photograph's full-resolution maps and overlay cost several GB).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from drgnet.data.preprocess import Preprocessed, load_rgb, preprocess, to_rgb_uint8
from drgnet.engines import Engine, TorchEngine
from drgnet.labels import (
    GRADE_NAMES,
    LESION_COLOURS,
    LESIONS,
    REFERABLE_MIN_GRADE,
    normalised_entropy,
    referable_probability,
)
from drgnet.tiling import (
    TILE_OVERLAP,
    TileGrid,
    attach_lesion_view,
    draw_on_photograph,
    lesion_side,
    lesion_view,
    tta_flips,
    unflip_maps,
    view_geometry,
)

#: Largest derivative (probability maps, overlays) drawn by default: 16 megapixels, a 4K screen's worth and more.
DRAW_MAX_PIXELS = 16_000_000


def draw_max_pixels() -> int:
    """The pixel limit for drawn derivatives: ``$DRGNET_DRAW_MAX_PIXELS``, else :data:`DRAW_MAX_PIXELS`.

    Raises:
        ValueError: the variable is not a positive integer.
    """
    raw = os.environ.get("DRGNET_DRAW_MAX_PIXELS", "").strip()
    if not raw:
        return DRAW_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"DRGNET_DRAW_MAX_PIXELS={raw!r}: expected a positive number of pixels")
    return value


def draw_shape(shape: tuple[int, int], max_pixels: int | None) -> tuple[int, int]:
    """``(h, w)`` of a uniformly downscaled copy of an ``(H, W)`` picture with at most ``max_pixels`` pixels."""
    h, w = int(shape[0]), int(shape[1])
    if max_pixels is None or h * w <= max_pixels:
        return h, w
    k = math.sqrt(max_pixels / (h * w))
    dh, dw = max(1, math.floor(h * k)), max(1, math.floor(w * k))
    return dh, dw


@dataclass(frozen=True)
class LesionSummary:
    area_fraction: float  # lesion pixels / field-of-view pixels, at the model's resolution
    count: int  # connected regions above the threshold
    max_probability: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "area_fraction": round(self.area_fraction, 6),
            "count": self.count,
            "max_probability": round(self.max_probability, 4),
        }


@dataclass
class Prediction:
    """What the model says about one photograph.

    Attributes:
        grade: ICDR grade 0-4 (argmax of ``probs``).
        probs: ``(5,)`` grade probabilities.
        referable_probability: P(grade >= 2).
        uncertainty: Normalised entropy of ``probs`` in [0, 1] (1 = uniform).
        lesion_probs: ``(4, H, W)`` float32 per-lesion probabilities at the photograph's resolution.
        attention: ``(H, W)`` float32 high-level attention in [0, 1] at the photograph's resolution.
        lesions: Per-lesion area, count and peak probability.
        fov_mask: ``(H, W)`` bool field of view.
        model_version: Identifier of the checkpoint that predicted this.

    With a pixel limit (``map_max_pixels``) the maps and ``fov_mask`` are at a downscaled ``(h, w)`` instead.
    """

    grade: int
    probs: np.ndarray
    referable_probability: float
    uncertainty: float
    lesion_probs: np.ndarray = field(repr=False)
    attention: np.ndarray = field(repr=False)
    lesions: dict[str, LesionSummary]
    fov_mask: np.ndarray = field(repr=False)
    model_version: str = ""
    threshold: float = 0.5

    @property
    def referable(self) -> bool:
        return self.grade >= REFERABLE_MIN_GRADE

    @property
    def grade_name(self) -> str:
        return GRADE_NAMES[self.grade]

    def lesion_masks(self) -> np.ndarray:
        """``(4, H, W)`` uint8 binary masks at the prediction threshold."""
        return (self.lesion_probs >= self.threshold).astype(np.uint8)

    def to_json(self) -> dict[str, Any]:
        return {
            "grade": self.grade,
            "grade_name": self.grade_name,
            "probs": [round(float(p), 6) for p in self.probs],
            "referable": self.referable,
            "referable_probability": round(self.referable_probability, 6),
            "uncertainty": round(self.uncertainty, 6),
            "lesions": {k: v.to_dict() for k, v in self.lesions.items()},
            "model_version": self.model_version,
        }


def summarise_lesions(probs: np.ndarray, fov: np.ndarray, threshold: float = 0.5) -> dict[str, LesionSummary]:
    """Area fraction (of the field of view), region count and peak probability per lesion."""
    fov_pixels = max(int(fov.sum()), 1)
    out = {}
    for k, name in enumerate(LESIONS):
        p = np.where(fov, probs[k], 0.0)
        mask = (p >= threshold).astype(np.uint8)
        count = cv2.connectedComponents(mask, connectivity=8)[0] - 1 if mask.any() else 0
        out[name] = LesionSummary(float(mask.sum()) / fov_pixels, int(count), float(p.max()) if p.size else 0.0)
    return out


@dataclass(frozen=True)
class ModelMaps:
    """A batch of network outputs as probabilities at the model's input resolution (numpy, float32).

    Attributes:
        grade_probs: ``(B, 5)`` softmax of the grade logits.
        lesion_probs: ``(B, 4, S, S)`` sigmoid of the lesion logits.
        attention: ``(B, S, S)`` high-level attention, bilinearly upsampled from the stride-32 grid.
    """

    grade_probs: np.ndarray
    lesion_probs: np.ndarray
    attention: np.ndarray


def model_maps(
    grade_logits: torch.Tensor | np.ndarray,
    lesion_logits: torch.Tensor | np.ndarray,
    attention: torch.Tensor | np.ndarray,
    size: int,
) -> ModelMaps:
    """Logits of any engine (PyTorch, ONNX Runtime) to probabilities, by one code path for all of them."""

    def tensor(a: torch.Tensor | np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a).float()

    with torch.inference_mode():
        att = torch.nn.functional.interpolate(
            tensor(attention), size=(size, size), mode="bilinear", align_corners=False
        )[:, 0]
        return ModelMaps(
            grade_probs=torch.softmax(tensor(grade_logits), dim=1).numpy(),
            lesion_probs=torch.sigmoid(tensor(lesion_logits)).numpy(),
            attention=att.numpy(),
        )


@dataclass(frozen=True)
class PhotoInput:
    """What the engine sees of one photograph.

    Attributes:
        image: ``(S, S, 3)`` uint8 global view (grade and attention come from it).
        lesion: The lesion view (:func:`drgnet.tiling.lesion_view`), or None: lesion maps from the global view.
    """

    image: np.ndarray
    lesion: Preprocessed | None = None


@dataclass(frozen=True)
class PhotoMaps:
    """One photograph's model outputs as probabilities (numpy, float32).

    Attributes:
        grade_probs: ``(5,)`` from the global view.
        lesion_probs: ``(4, L, L)`` at the lesion view's side ``L`` (the input size ``S`` without a lesion view).
        attention: ``(S, S)`` from the global view.
    """

    grade_probs: np.ndarray
    lesion_probs: np.ndarray
    attention: np.ndarray


def engine_maps(
    engine: Engine,
    photos: Sequence[PhotoInput],
    *,
    overlap: float = TILE_OVERLAP,
    batch_size: int = 8,
    tta: str = "none",
) -> list[PhotoMaps]:
    """Run photographs through any engine: global views for the grade, overlapping tiles for the lesion maps.

    The one inference path of ``predict``, ``screen``, the app and ONNX Runtime. Global views and tiles have the
    same side (the model's input size), so they share the engine's batches; the grade head also runs on every
    tile and is thrown away there, which costs under 1% of the FLOPs of a pass (``FlopCounterMode``, 224 and
    512 px): cheaper than keeping a second, lesion-only network in step with the first.

    Args:
        engine: ``(B, S, S, 3) uint8 -> EngineOutput`` (``TorchEngine``, ``OnnxEngine``).
        photos: Global view and optional lesion view of each photograph.
        overlap: Share of a tile's side shared with each neighbour.
        batch_size: Pictures (global views and tiles) per engine call.
        tta: Test-time augmentation of the lesion maps (:data:`drgnet.tiling.TTA_FLIPS`): every picture is also
            run flipped and its lesion probabilities are averaged with the flips undone (``"hflip"``: twice the
            passes, ``"flips"``: four times). Grade and attention come from the unflipped global view.
    """
    flips = tta_flips(tta)
    if not photos:
        return []
    size = engine.input_size
    grids = [TileGrid.plan(p.lesion.size, size, overlap, p.lesion.fov_mask) if p.lesion else None for p in photos]
    pictures = [np.stack([p.image for p in photos])]
    pictures += [g.cut(p.lesion.image) for g, p in zip(grids, photos, strict=True) if g is not None]
    batch = np.concatenate(pictures)
    lesion_logits = np.empty((len(batch), len(LESIONS), size, size), np.float32)  # filled as the batches return
    grade_logits, attention = [], []
    for i in range(0, len(batch), batch_size):
        out = engine(batch[i : i + batch_size])
        lesion_logits[i : i + batch_size] = out.lesion_logits
        grade_logits.append(out.grade_logits)
        attention.append(out.attention)
    n = len(photos)
    maps = model_maps(np.concatenate(grade_logits)[:n], lesion_logits[:n], np.concatenate(attention)[:n], size)
    # In place: a second array of every tile's maps would double the peak memory of a screening batch.
    lesion_probs = lesion_logits
    with torch.inference_mode():
        torch.sigmoid_(torch.from_numpy(lesion_probs))
    for axes in flips[1:]:
        flipped = np.ascontiguousarray(np.flip(batch, axes))
        for i in range(0, len(batch), batch_size):
            out = engine(flipped[i : i + batch_size])
            lesion_probs[i : i + batch_size] += unflip_maps(_sigmoid(out.lesion_logits), axes)
    lesion_probs /= len(flips)
    result, start = [], n
    for i, grid in enumerate(grids):
        lesion = lesion_probs[i]
        if grid is not None:
            lesion = grid.blend(lesion_probs[start : start + len(grid)])
            start += len(grid)
        result.append(PhotoMaps(maps.grade_probs[i], lesion, maps.attention[i]))
    return result


def _sigmoid(logits: np.ndarray | torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.sigmoid(torch.as_tensor(logits).float()).numpy()


def prediction_at_full_resolution(
    pre: Preprocessed,
    grade_probs: np.ndarray,
    lesion_probs: np.ndarray,
    attention: np.ndarray,
    *,
    threshold: float = 0.5,
    model_version: str = "",
    max_pixels: int | None = None,
) -> Prediction:
    """One photograph's model outputs as a Prediction at the photograph's resolution.

    Args:
        pre: The photograph's preprocessing (its geometry maps the ``S x S`` input back onto the photograph).
        grade_probs: ``(5,)`` grade probabilities.
        lesion_probs: ``(4, L, L)`` lesion probabilities over the same square as ``pre`` (``L = S`` from the
            global view, larger from a lesion view); outside the field of view they are zeroed here.
        attention: ``(S, S)`` attention; zeroed outside the field of view and scaled to a peak of 1.

    The lesion summary is measured at the lesion maps' resolution, as ``drgnet screen`` reports it. With
    ``max_pixels`` the maps are drawn on a downscaled copy of the photograph with at most that many pixels
    (:func:`draw_shape`), so their cost does not grow with the camera's resolution.
    """
    probs = np.asarray(grade_probs)
    geometry = view_geometry(pre, lesion_probs.shape[-1])
    lp = lesion_probs * geometry.fov_mask[None]
    att = attention * pre.fov_mask
    att = att / att.max() if att.max() > 0 else att
    fov = pre.fov.mask
    shape = draw_shape(pre.original_shape, max_pixels)
    if shape != tuple(fov.shape):
        fov = cv2.resize(fov.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
    if shape == tuple(pre.original_shape):
        lesion_maps = draw_on_photograph(geometry, lp, fov)
        attention_map = draw_on_photograph(pre, att[None], fov)[0]
    else:
        lesion_maps = geometry.unproject_mask(lp.astype(np.float32), out_shape=shape)
        lesion_maps *= fov[None]  # in place: a second full-size copy is what made big photographs expensive
        attention_map = pre.unproject_mask(att.astype(np.float32), out_shape=shape)
        attention_map *= fov
    return Prediction(
        grade=int(probs.argmax()),
        probs=probs,
        referable_probability=referable_probability(probs),
        uncertainty=normalised_entropy(probs),
        lesion_probs=lesion_maps,
        attention=attention_map,
        lesions=summarise_lesions(lp, geometry.fov_mask, threshold),
        fov_mask=fov,
        model_version=model_version,
        threshold=threshold,
    )


class Predictor:
    """Loads a checkpoint once and predicts photographs.

    ``Predictor.from_checkpoint(path).predict(image)`` with ``image`` a path or an RGB array.

    Args:
        model: A DRGNet (run by a ``TorchEngine``) or any engine (``OnnxEngine``).
        model_version: Identifier written beside each result (default: the engine's).
        threshold: Probability at which a pixel counts as lesion.
        map_max_pixels: Pixel limit of the maps (:func:`draw_shape`); None: the photograph's resolution.
        lesion_fov_px: Side of the lesion view (:mod:`drgnet.tiling`); None: what the model was made for
            (``ModelConfig.lesion_fov_px``); 0: lesion maps from the global view.
        tta: Test-time augmentation of the lesion maps (``engine_maps``): ``"none"``, ``"hflip"`` or ``"flips"``.
    """

    def __init__(
        self,
        model: torch.nn.Module | Engine,
        model_version: str = "",
        threshold: float = 0.5,
        map_max_pixels: int | None = None,
        lesion_fov_px: int | None = None,
        tta: str = "none",
    ) -> None:
        tta_flips(tta)  # an unknown name fails here, not at the first photograph
        if isinstance(model, torch.nn.Module):
            self.model: torch.nn.Module | None = model.eval()
            self.engine: Engine = TorchEngine(model, model_version, channels_last=False)
        else:
            self.model, self.engine = None, model
        self.size = int(self.engine.input_size)
        self.model_version = model_version or self.engine.model_version
        self.threshold = threshold
        self.map_max_pixels = map_max_pixels  # None: maps at the photograph's resolution
        self.lesion_fov_px = self.engine.lesion_fov_px if lesion_fov_px is None else int(lesion_fov_px)
        self.tta = tta

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        threshold: float = 0.5,
        map_max_pixels: int | None = None,
        lesion_fov_px: int | None = None,
        tta: str = "none",
    ) -> Predictor:
        from drgnet.model.checkpoint import load_checkpoint

        model, meta = load_checkpoint(Path(path))
        version = str(meta.get("version_name") or meta.get("weights_sha256", "")[:12])
        return cls(model, version, threshold, map_max_pixels, lesion_fov_px, tta)

    def prepare(self, image: np.ndarray | str | Path, source: str | None = None) -> tuple[Preprocessed, str]:
        """Decode and preprocess a photograph; the result carries its lesion view when the model has one."""
        if isinstance(image, (str, Path)):
            name = source or str(image)
            array = load_rgb(image)
        else:
            name = source or "image"
            array = to_rgb_uint8(np.asarray(image))
        pre = preprocess(array, self.size, source=name)
        side = lesion_side(pre, self.lesion_fov_px) if self.lesion_fov_px else 0
        if side:
            pre = attach_lesion_view(pre, lesion_view(pre, array, side))
        return pre, name

    def predict_prepared(self, batch: list[Preprocessed]) -> list[Prediction]:
        """Predict photographs made ready by :meth:`prepare` (their lesion views are tiled, when they have one)."""
        photos = [PhotoInput(p.image, getattr(p, "lesion", None)) for p in batch]
        maps = engine_maps(self.engine, photos, tta=self.tta)
        return [
            prediction_at_full_resolution(
                pre,
                m.grade_probs,
                m.lesion_probs,
                m.attention,
                threshold=self.threshold,
                model_version=self.model_version,
                max_pixels=self.map_max_pixels,
            )
            for pre, m in zip(batch, maps, strict=True)
        ]

    def predict(self, image: np.ndarray | str | Path, source: str | None = None) -> Prediction:
        pre, _ = self.prepare(image, source)
        return self.predict_prepared([pre])[0]


def render_overlay(
    image: np.ndarray,
    lesion_maps: np.ndarray | None = None,
    attention: np.ndarray | None = None,
    lesions: tuple[str, ...] | list[str] = LESIONS,
    opacity: float = 0.5,
    threshold: float = 0.5,
    outline: bool = True,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Draw lesion maps and/or an attention heatmap over a photograph, for a person to look at.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        lesion_maps: ``(4, H, W)`` probabilities or binary masks in ``LESIONS`` order.
        attention: ``(H, W)`` in [0, 1], drawn as a heatmap (JET) under the lesion colours.
        lesions: Which lesions to draw (names from ``LESIONS``).
        opacity: Weight of the overlay colours, 0 to 1.
        threshold: Probability at which a pixel counts as lesion.
        outline: Also trace each lesion region's outline in full colour, so tiny lesions stay visible.
        max_pixels: Draw on a copy downscaled to at most this many pixels (:func:`draw_shape`); the maps may then
            be at the photograph's size or already at the downscaled size.

    Returns:
        A new ``(H, W, 3)`` uint8 RGB image (``draw_shape((H, W), max_pixels)`` with a limit).
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"render_overlay: image must be (H, W, 3), got {image.shape}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"render_overlay: opacity must be in [0, 1], got {opacity}")
    h, w = draw_shape(image.shape[:2], max_pixels)
    if (h, w) != image.shape[:2]:
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        if attention is not None and attention.shape != (h, w):
            attention = _shrink(attention, (h, w))
        if lesion_maps is not None and lesion_maps.shape[1:] != (h, w):
            lesion_maps = np.stack([_shrink(m, (h, w)) for m in lesion_maps])
    out = image.astype(np.float32)
    if attention is not None:
        if attention.shape != (h, w):
            raise ValueError(f"render_overlay: attention must be ({h}, {w}), got {attention.shape}")
        heat = cv2.applyColorMap(np.clip(attention * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
        heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB).astype(np.float32)
        alpha = opacity * np.clip(attention, 0, 1)[..., None]
        out = out * (1 - alpha) + heat * alpha
    if lesion_maps is not None:
        if lesion_maps.shape != (len(LESIONS), h, w):
            raise ValueError(f"render_overlay: lesion maps must be ({len(LESIONS)}, {h}, {w}), got {lesion_maps.shape}")
        for name in lesions:
            k = LESIONS.index(name)
            mask = lesion_maps[k] >= threshold
            if not mask.any():
                continue
            colour = np.array(LESION_COLOURS[name], np.float32)
            out[mask] = out[mask] * (1 - opacity) + colour * opacity
            if outline:
                contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                canvas = np.ascontiguousarray(out)
                cv2.drawContours(canvas, contours, -1, tuple(float(c) for c in colour), max(1, round(min(h, w) / 600)))
                out = canvas
    return np.clip(out, 0, 255).astype(np.uint8)


def _shrink(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A map downscaled by area averaging (a probability stays a probability; thin lesions stay visible)."""
    return cv2.resize(np.asarray(a, np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def prediction_json(prediction: Prediction, image: str) -> str:
    return json.dumps({"image": image, **prediction.to_json()})
