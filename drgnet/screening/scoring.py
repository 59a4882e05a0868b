"""One batch through an engine: grades, referral, uncertainty, lesion statistics, quality, and mask files."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drgnet.data.quality import ImageQuality, QualityThresholds
from drgnet.labels import GRADE_NAMES, LESIONS, NUM_GRADES, is_referable, normalised_entropy, referable_probability
from drgnet.screening.inputs import MAX_FILE_BYTES
from drgnet.screening.loading import ScreenItem
from drgnet.screening.outputs import _PROB_DIGITS, COLUMNS, one_line
from drgnet.screening.sinks import ScreenSink


@dataclass(frozen=True)
class ScreenOptions:
    """What a screening run does besides grading."""

    threshold: float = 0.5  # lesion probability at which a pixel counts as lesion
    masks_dir: str | None = None  # write overlay and per-lesion mask PNGs here
    thresholds: QualityThresholds = field(default_factory=QualityThresholds)
    max_file_bytes: int = MAX_FILE_BYTES  # larger files are reported, never read
    draw_max_pixels: int | None = None  # masks and overlays drawn on a copy of at most this many pixels


def _nan_to_none(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def error_row(item: ScreenItem, engine: str, model_version: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    quality = item.quality or ImageQuality(gradable=False, reasons=(), fov_found=False)
    row.update(
        path=item.path,
        sha256=item.sha256 or None,
        status="error",
        error=item.error,
        model_version=model_version,
        engine=engine,
        gradable=False,
        quality_reasons=",".join(quality.reasons) or None,
        fov_found=quality.fov_found,
    )
    return row


def score_batch(
    items: Sequence[ScreenItem],
    engine: Any,
    options: ScreenOptions,
    sink: ScreenSink | None = None,
) -> list[dict[str, Any] | None]:
    """Rows for a batch of prepared items, in order (None for skipped items).

    The one place a batch becomes rows: local screening and every Ray actor call it. With a ``sink``, every
    scored photograph is handed to it (its items must have been prepared with ``keep_original``).
    """
    from drgnet.inference import PhotoInput, engine_maps, prediction_at_full_resolution, summarise_lesions

    ready = [i for i, it in enumerate(items) if it.ready]
    maps = engine_maps(engine, [PhotoInput(items[i].image, items[i].lesion) for i in ready])
    position = {i: k for k, i in enumerate(ready)}
    rows: list[dict[str, Any] | None] = []
    for i, item in enumerate(items):
        if item.skipped:
            rows.append(None)
            continue
        if not item.ready:
            rows.append(error_row(item, engine.name, engine.model_version))
            continue
        m = maps[position[i]]
        probs = m.grade_probs.astype(np.float64)
        fov = item.lesion.fov_mask if item.lesion is not None else item.fov_mask
        lesions = summarise_lesions(m.lesion_probs * fov[None], fov, options.threshold)
        grade = int(probs.argmax())
        row: dict[str, Any] = dict.fromkeys(COLUMNS)
        row.update(
            path=item.path,
            sha256=item.sha256,
            status="ok",
            error=None,
            grade=grade,
            grade_name=GRADE_NAMES[grade],
            referable=is_referable(grade),
            referable_probability=round(referable_probability(probs), _PROB_DIGITS),
            uncertainty=round(normalised_entropy(probs), _PROB_DIGITS),
            model_version=engine.model_version,
            engine=engine.name,
        )
        for g in range(NUM_GRADES):
            row[f"p_grade_{g}"] = round(float(probs[g]), _PROB_DIGITS)
        row.update({key: _nan_to_none(v) for key, v in item.quality.to_dict().items()})
        for name, summary in lesions.items():
            row[f"{name}_area_fraction"] = round(summary.area_fraction, _PROB_DIGITS)
            row[f"{name}_count"] = summary.count
        if options.masks_dir is not None:
            if item.pre is None or item.original is None:
                raise ValueError(f"{item.path}: masks requested but the photograph was not kept (keep_original=False)")
            full = prediction_at_full_resolution(
                item.pre,
                probs,
                m.lesion_probs,
                m.attention,
                threshold=options.threshold,
                max_pixels=options.draw_max_pixels,
            )
            row["overlay"] = write_masks(item, full.lesion_probs, full.attention, options)
        if sink is not None:
            try:
                sink.store(item, row, m.grade_probs, m.lesion_probs, m.attention)
            except ValueError as exc:
                item.error = one_line(f"not stored: {exc}")
                row = error_row(item, engine.name, engine.model_version)
        rows.append(row)
    return rows


def write_masks(item: ScreenItem, lesion_probs: np.ndarray, attention: np.ndarray, options: ScreenOptions) -> str:
    """Overlay and per-lesion 0/255 masks at the photograph's resolution (or at most ``options.draw_max_pixels``
    pixels: ``drgnet screen`` draws big photographs' derivatives on a downscaled copy); returns the overlay's path.

    Args:
        item: The photograph (``original`` kept).
        lesion_probs: ``(4, H, W)`` probabilities at the photograph's resolution.
        attention: ``(H, W)`` attention in [0, 1] at the photograph's resolution.

    Files are named ``<stem>_<sha256[:12]>_overlay.png`` and ``..._<MA|HE|EX|SE>.png`` so photographs with
    the same name in different folders do not overwrite each other.
    """
    import cv2

    from drgnet.inference import render_overlay

    out = Path(options.masks_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{Path(item.path).stem}_{item.sha256[:12]}"
    for k, name in enumerate(LESIONS):
        mask = ((lesion_probs[k] >= options.threshold) * 255).astype(np.uint8)
        _write_png(out / f"{stem}_{name}.png", mask)
    overlay = render_overlay(
        item.original,
        lesion_probs,
        attention,
        opacity=0.45,
        threshold=options.threshold,
        max_pixels=options.draw_max_pixels,
    )
    path = out / f"{stem}_overlay.png"
    _write_png(path, cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
    return str(path)


def _write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.tobytes())
    tmp.replace(path)
