"""The one record type every dataset reader yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drgnet.labels import GRADES, LESIONS, NUM_LESIONS


@dataclass
class Sample:
    """One fundus photograph with whatever labels its source provides.

    Attributes:
        image: RGB photograph, ``(H, W, 3)`` uint8.
        name: Identifier unique within its source (usually the file stem).
        source: Where it came from, e.g. ``"idrid"``, ``"ddr"``, ``"synthetic:clinic_a"``.
        grade: ICDR grade 0-4, or None when the source has no grade for this image.
        masks: Lesion masks ``(4, H, W)`` uint8 in {0, 1}, channels in ``LESIONS`` order, or None when the
            source has no segmentation for this image. A channel whose ``lesion_known`` flag is False is all
            zeros and must not be learnt from.
        lesion_known: Per lesion, whether ``masks`` holds a real annotation for it.
        ignore: ``(H, W)`` bool, True where no pixel label should be learnt (e.g. outside the field of view),
            or None when every pixel counts.
        path: The image file, when read from disk.
        meta: Anything else the source records (camera style, split, patient id, ...).
    """

    image: np.ndarray
    name: str
    source: str
    grade: int | None = None
    masks: np.ndarray | None = None
    lesion_known: tuple[bool, ...] = (False,) * NUM_LESIONS
    ignore: np.ndarray | None = None
    path: Path | None = None
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        img = self.image
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"{self.name}: image must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
        h, w = img.shape[:2]
        if self.grade is not None:
            if int(self.grade) not in GRADES:
                raise ValueError(f"{self.name}: grade {self.grade!r} is not an ICDR grade (0-4)")
            self.grade = int(self.grade)
        if self.masks is not None:
            if self.masks.shape != (NUM_LESIONS, h, w):
                raise ValueError(f"{self.name}: masks must be ({NUM_LESIONS}, {h}, {w}), got {self.masks.shape}")
            self.masks = (self.masks > 0).astype(np.uint8)
        self.lesion_known = tuple(bool(k) for k in self.lesion_known)
        if len(self.lesion_known) != NUM_LESIONS:
            raise ValueError(f"{self.name}: lesion_known needs {NUM_LESIONS} flags")
        if self.masks is None and any(self.lesion_known):
            raise ValueError(f"{self.name}: lesion_known set but no masks given")
        if self.ignore is not None:
            if self.ignore.shape != (h, w):
                raise ValueError(f"{self.name}: ignore mask must be ({h}, {w}), got {self.ignore.shape}")
            self.ignore = self.ignore.astype(bool)

    @property
    def has_masks(self) -> bool:
        return self.masks is not None and any(self.lesion_known)

    def mask(self, lesion: str) -> np.ndarray | None:
        """The ``(H, W)`` mask of one lesion, or None when it is not annotated."""
        i = LESIONS.index(lesion)
        if self.masks is None or not self.lesion_known[i]:
            return None
        return self.masks[i]
