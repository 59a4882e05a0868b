"""Write the documentation's pictures of the synthetic generator (our photographs only, never real ones).

    .venv/bin/python scripts/synthetic_figures.py docs/

- ``synthetic_preview.jpg``: one photograph per grade, their masks, the grade-3 eye under the other camera styles;
- ``synthetic_lesion_crops.jpg``: crops at full resolution (1024 px photographs) of every lesion kind, each beside
  the same crop with its mask outlined, and the same crop of the old (v1) generator with the same seed and grade.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from drgnet.data.synthetic import generate_fundus, write_preview
from drgnet.labels import LESION_COLOURS, LESIONS

CROP = 96  # pixels of the 1024 px photograph
ZOOM = 3  # nearest-neighbour enlargement, so single pixels stay visible


def _jpeg(path: Path, rgb: np.ndarray, quality: int = 88) -> None:
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover
        raise RuntimeError("OpenCV could not encode a JPEG")
    path.write_bytes(buf.tobytes())


def _crop(a: np.ndarray, cy: int, cx: int) -> np.ndarray:
    h, w = a.shape[:2]
    y0 = int(np.clip(cy - CROP // 2, 0, h - CROP))
    x0 = int(np.clip(cx - CROP // 2, 0, w - CROP))
    return a[y0 : y0 + CROP, x0 : x0 + CROP]


def _outline(image: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    out = image.copy()
    edge = mask.astype(np.uint8) - cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8))
    out[edge.astype(bool)] = colour
    return out


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    cv2.putText(img, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def lesion_crops(size: int = 1024, seed: int = 0) -> np.ndarray:
    """Rows: MA, HE, EX, SE; columns: v2 crop, v2 crop with mask outline, v1 crop of the same place."""
    rows = []
    for k, lesion in enumerate(LESIONS):
        for index in range(40):
            f = generate_fundus(3 if lesion != "SE" else 2, size=size, seed=seed, index=index)
            if f.masks[k].sum() > 10:
                break
        # The densest spot of this lesion: where its mask is most present in a crop-sized window.
        density = cv2.blur(f.masks[k].astype(np.float32), (CROP // 2, CROP // 2))
        cy, cx = np.unravel_index(int(np.argmax(density)), density.shape)
        old = generate_fundus(f.grade, size=size, seed=seed, index=f.index, generator="v1")
        cells = [
            _label(_crop(f.image, cy, cx), f"{lesion} v2"),
            _label(_outline(_crop(f.image, cy, cx), _crop(f.masks[k], cy, cx), LESION_COLOURS[lesion]), "mask"),
            _label(_crop(old.image, cy, cx), "old (v1)"),
        ]
        cells = [np.kron(c, np.ones((ZOOM, ZOOM, 1), np.uint8)) for c in cells]
        gap = np.full((CROP * ZOOM, 6, 3), 40, np.uint8)
        rows.append(np.concatenate([cells[0], gap, cells[1], gap, cells[2]], axis=1))
        rows.append(np.full((6, rows[-1].shape[1], 3), 40, np.uint8))
    return np.concatenate(rows[:-1], axis=0)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".preview.png"
    write_preview(tmp, size=288)
    _jpeg(out / "synthetic_preview.jpg", cv2.imread(str(tmp))[..., ::-1])
    tmp.unlink()
    _jpeg(out / "synthetic_lesion_crops.jpg", lesion_crops())
    for name in ("synthetic_preview.jpg", "synthetic_lesion_crops.jpg"):
        print(out / name, (out / name).stat().st_size // 1024, "KiB")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
