"""A contact sheet of synthetic photographs: one per grade, their masks, one eye under every camera style."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from drgnet.data._synth_camera import STYLES, resolve_style
from drgnet.data._synth_cohort import _atomic_write
from drgnet.data._synth_fundus import _check_size, generate_fundus
from drgnet.labels import GRADE_NAMES, LESION_COLOURS, LESIONS


def _label(img: np.ndarray, text: str, scale: float) -> None:
    org = (int(8 * scale), int(22 * scale))
    font = cv2.FONT_HERSHEY_SIMPLEX
    fs = 0.55 * scale
    th = max(1, int(round(1.5 * scale)))
    cv2.putText(img, text, org, font, fs, (0, 0, 0), th + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, font, fs, (255, 255, 255), th, cv2.LINE_AA)


def overlay_masks(image: np.ndarray, masks: np.ndarray, opacity: float = 0.75) -> np.ndarray:
    """The photograph with each lesion mask painted in its ``LESION_COLOURS`` colour."""
    out = image.astype(np.float32)
    for k, lesion in enumerate(LESIONS):
        m = masks[k].astype(bool)
        if m.any():
            out[m] = out[m] * (1 - opacity) + np.asarray(LESION_COLOURS[lesion], np.float32) * opacity
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def write_preview(path: Path, size: int = 384, style: str = "default", seed: int = 0) -> Path:
    """Write a contact sheet PNG: one photograph per grade, their lesion masks, and one eye under every other
    camera style.

    Row 1 shows grades 0-4 (image ``index`` = grade) in ``style``; row 2 the same photographs with the lesion
    masks painted in ``LESION_COLOURS``; the rows below show the grade-3 eye through each other camera style.

    Returns:
        ``path``.
    """
    size = _check_size(size)
    cam = resolve_style(style)
    scale = size / 384.0
    cells: list[list[np.ndarray]] = [[], []]
    for g in range(5):
        f = generate_fundus(g, size=size, seed=seed, style=cam, index=g)
        top = f.image.copy()
        _label(top, f"{g}: {GRADE_NAMES[g]}", scale)
        cells[0].append(top)
        ov = overlay_masks(f.image, f.masks)
        present = " ".join(les for k, les in enumerate(LESIONS) if f.masks[k].any())
        _label(ov, f"masks: {present or 'none'}", scale)
        cells[1].append(ov)
    others = [s for s in STYLES if s != cam.name]
    row: list[np.ndarray] = []
    for name in others:
        f = generate_fundus(3, size=size, seed=seed, style=name, index=3)
        im = f.image.copy()
        _label(im, f"grade 3 / {name}", scale)
        row.append(im)
        if len(row) == 5:
            cells.append(row)
            row = []
    if row:
        cells.append(row)
    blank = np.zeros((size, size, 3), np.uint8)
    gap = max(2, int(4 * scale))
    lines = []
    for r in cells:
        r = r + [blank] * (5 - len(r))
        parts = []
        for c in r:
            parts += [c, np.full((size, gap, 3), 40, np.uint8)]
        lines.append(np.concatenate(parts[:-1], axis=1))
        lines.append(np.full((gap, lines[-1].shape[1], 3), 40, np.uint8))
    # Legend strip for the mask colours.
    legend = np.full((int(30 * scale), lines[0].shape[1], 3), 40, np.uint8)
    x = int(8 * scale)
    for lesion in LESIONS:
        cv2.rectangle(legend, (x, int(8 * scale)), (x + int(16 * scale), int(24 * scale)), LESION_COLOURS[lesion], -1)
        cv2.putText(
            legend,
            lesion,
            (x + int(20 * scale), int(22 * scale)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5 * scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        x += int(70 * scale)
    cv2.putText(
        legend,
        f"drgnet synthetic fundus  style={cam.name}  seed={seed}",
        (x + int(20 * scale), int(22 * scale)),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5 * scale,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    sheet = np.concatenate([legend] + lines[:-1], axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", sheet[..., ::-1])
    if not ok:  # pragma: no cover
        raise RuntimeError("OpenCV could not encode the preview PNG")
    _atomic_write(path, buf.tobytes())
    return path
